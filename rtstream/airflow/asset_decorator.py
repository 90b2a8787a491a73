"""Airflow 3's `@asset` (task SDK `airflow.sdk.definitions.asset.decorators`): the decorated function
becomes an asset, and a DAG named after it (or `dag_id=`) with one task of the function's name whose
outlet is the asset. The function's parameters are filled as Airflow fills them: `self` is the asset,
`context` the task's context, any other parameter without a default the asset of that name (an inlet),
a parameter named as a context key that value (as Airflow 3.3.2 runs `live_region_player_stats(self,
outlet_events)`), a parameter with a default its default.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from rtstream.airflow.assets import Asset, AssetRef, BaseAsset
from rtstream.airflow.dag_model import DAG
from rtstream.airflow.operators import PythonOperator

_by_name: dict[str, Asset] = {}  # assets made by @asset, found by a consumer's parameter name


def _check_arguments(fn: Callable[..., Any]) -> None:
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind is param.VAR_POSITIONAL:
            raise TypeError(f"wildcard '*{name}' is not supported in @asset")
        if param.kind is param.VAR_KEYWORD:
            raise TypeError(f"wildcard '**{name}' is not supported in @asset")
        if param.kind is param.POSITIONAL_ONLY and param.default is param.empty:
            raise TypeError(f"positional-only argument '{name}' without a default is not supported in @asset")


class AssetMainOperator(PythonOperator):
    """The task of an `@asset`: its callable gets `self`, `context` and its inlet assets by name."""

    def __init__(self, *, definition_name: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.definition_name = definition_name

    def execute(self, context: dict[str, Any]) -> Any:
        kwargs: dict[str, Any] = {}
        for key, param in inspect.signature(self.python_callable).parameters.items():
            if param.default is not param.empty:
                kwargs[key] = param.default
            elif key == "self":
                kwargs[key] = _fetch_asset(self.definition_name)
            elif key == "context":
                kwargs[key] = context
            elif key in context:  # Airflow 3.3 hands a context name (`outlet_events`, `dag_run` ...) its value
                kwargs[key] = context[key]
            else:
                kwargs[key] = _fetch_asset(key)
        self.op_args, self.op_kwargs = [], kwargs
        self.outlet_events = context.get("outlet_events")
        return self.execute_callable()


def _fetch_asset(name: str) -> Asset:
    # Airflow asks its metadata DB for the asset of that name; rtstream knows the @asset ones of the
    # DAG files loaded, and an asset named so otherwise (its URI is then its name)
    return _by_name.get(name) or Asset(name=name)


class AssetDefinition(Asset):
    def __init__(self, *, name: str, uri: str, group: str | None, extra: dict[str, Any] | None,
                 function: Callable[..., Any], source: asset):
        super().__init__(name=name, uri=uri, group=group, extra=extra)
        self.function, self.source = function, source
        _by_name[name] = self
        with source.create_dag(default_dag_id=name):
            _check_arguments(function)
            AssetMainOperator(
                task_id=function.__name__, python_callable=function, definition_name=name,
                inlets=[AssetRef(name=n, uri=None) for n, p in inspect.signature(function).parameters.items()
                        if n not in ("self", "context") and p.default is p.empty],
                outlets=[self])


class asset:  # noqa: N801 - Airflow's name
    """`@asset(schedule=..., uri=..., name=..., group=..., extra=..., dag_id=..., tags=...)`."""

    def __init__(self, *, schedule: Any, name: str | None = None, uri: Any = None, group: str = "asset",
                 extra: dict[str, Any] | None = None, watchers: list[Any] | None = None, dag_id: str | None = None,
                 **dag_kwargs: Any):
        self.schedule, self.name, self.uri, self.group = schedule, name, uri, group
        self.extra, self.dag_id, self.dag_kwargs = dict(extra or {}), dag_id, dag_kwargs

    def create_dag(self, *, default_dag_id: str) -> DAG:
        dag_id = self.dag_id or default_dag_id
        kwargs = {k: v for k, v in self.dag_kwargs.items() if k not in ("dag_display_name", "is_paused_upon_creation")}
        return DAG(dag_id=dag_id, schedule=self.schedule, catchup=False, **kwargs)

    def __call__(self, fn: Callable[..., Any]) -> AssetDefinition:
        if fn.__name__ != fn.__qualname__:
            raise ValueError("nested function not supported")
        name = self.name or fn.__name__
        return AssetDefinition(name=name, uri=name if self.uri is None else str(self.uri), group=self.group,
                               extra=self.extra, function=fn, source=self)

    class multi:  # noqa: N801 - Airflow's name
        """`@asset.multi(outlets=[...], schedule=...)`: one task whose outlets are those assets."""

        def __init__(self, *, outlets: list[BaseAsset], schedule: Any, dag_id: str | None = None, **dag_kwargs: Any):
            if not outlets:
                raise ValueError("no outlets provided")
            self.outlets, self.factory = list(outlets), asset(schedule=schedule, dag_id=dag_id, **dag_kwargs)

        def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
            if fn.__name__ != fn.__qualname__:
                raise ValueError("nested function not supported")
            with self.factory.create_dag(default_dag_id=fn.__name__):
                _check_arguments(fn)
                AssetMainOperator(task_id=fn.__name__, python_callable=fn, definition_name=fn.__name__,
                                  outlets=self.outlets)
            return fn
