"""The operators rtstream runs natively: Python, Branch, ShortCircuit, Empty/Dummy (Bash in bash.py), and
the placeholder every other operator becomes, which the DAG bag refuses with its name and the reason.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from rtstream.airflow.asset_events import run_yielding
from rtstream.airflow.operator_base import BaseOperator
from rtstream.airflow.pip_advice import install_command
from rtstream.airflow.run_support import run_on_loop
from rtstream.airflow.states import AirflowException


def call_kwargs(fn: Callable[..., Any], n_args: int, context: dict[str, Any]) -> dict[str, Any]:
    """Airflow's KeywordParameters.determine: all of the context for `**kwargs`, else the names `fn` asks for."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return {}
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return dict(context)
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    positional = sum(1 for p in named if p.kind is p.POSITIONAL_OR_KEYWORD)
    skip = min(n_args, positional)
    return {p.name: context[p.name] for p in named[skip:] if p.name in context}


class PythonOperator(BaseOperator):
    template_fields: ClassVar[tuple[str, ...]] = ("templates_dict", "op_args", "op_kwargs")
    ui_color = "#ffefeb"

    def __init__(self, *, python_callable: Callable[..., Any], op_args: Iterable[Any] | None = None,
                 op_kwargs: dict[str, Any] | None = None, templates_dict: dict[str, Any] | None = None,
                 templates_exts: list[str] | None = None, show_return_value_in_logs: bool = True,
                 provide_context: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        if not callable(python_callable):
            raise AirflowException(f"task {self.task_id!r}: python_callable is not callable: {python_callable!r}")
        self.python_callable = python_callable
        self.op_args, self.op_kwargs = list(op_args or []), dict(op_kwargs or {})
        self.templates_dict, self.templates_exts = templates_dict, templates_exts
        if templates_exts:  # as Airflow: a templated value ending so is a template file
            self.template_ext = tuple(templates_exts)  # type: ignore[misc]

    def execute(self, context: dict[str, Any]) -> Any:
        merged = {**context, **self.op_kwargs, "templates_dict": self.templates_dict}
        self.op_kwargs = call_kwargs(self.python_callable, len(self.op_args), merged)
        self.outlet_events = context.get("outlet_events")
        return self.execute_callable()

    def execute_callable(self) -> Any:
        # a generator's yielded Metadata go to the outlets' events (Airflow's ExecutionCallableRunner)
        result = run_yielding(self.python_callable, getattr(self, "outlet_events", None), *self.op_args,
                              **self.op_kwargs)
        if inspect.isawaitable(result):  # an async callable runs as a coroutine on the run's loop
            result = run_on_loop(result)
        return result


class SkipMixin:
    """Skipping tasks downstream, as Airflow's SkipMixin: the run applies it when this try succeeds."""

    def skip_all_except(self, ti: Any, branch_task_ids: str | Iterable[str] | None) -> None:
        ids = {branch_task_ids} if isinstance(branch_task_ids, str) else set(branch_task_ids or [])
        ti.request_branch(ids)


class BranchMixIn(SkipMixin):
    def do_branch(self, context: dict[str, Any], branches: Any) -> Any:
        self.skip_all_except(context["ti"], branches)
        return branches


class BaseBranchOperator(BaseOperator, BranchMixIn):
    def choose_branch(self, context: dict[str, Any]) -> str | Iterable[str]:
        raise NotImplementedError

    def execute(self, context: dict[str, Any]) -> Any:
        return self.do_branch(context, self.choose_branch(context))


class BranchPythonOperator(PythonOperator, BranchMixIn):
    def execute(self, context: dict[str, Any]) -> Any:
        return self.do_branch(context, super().execute(context))


class ShortCircuitOperator(PythonOperator, SkipMixin):
    """A falsy return skips every task downstream (or, with ignore_downstream_trigger_rules=False,
    only the direct ones, and the trigger rules decide the rest)."""

    def __init__(self, *, ignore_downstream_trigger_rules: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.ignore_downstream_trigger_rules = ignore_downstream_trigger_rules

    def execute(self, context: dict[str, Any]) -> Any:
        condition = super().execute(context)
        if not condition:
            context["ti"].request_short_circuit(all_downstream=self.ignore_downstream_trigger_rules)
        return condition


class EmptyOperator(BaseOperator):
    ui_color = "#e8f7e4"

    def execute(self, context: dict[str, Any]) -> None:
        return None


DummyOperator = EmptyOperator


class _UnsupportedMeta(type):
    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        # `SomeHook.get_connection(...)` raises when called, rather than giving a placeholder as its value
        return _UnsupportedThing(f"{cls.__name__}.{name}", getattr(cls, "unsupported_reason", ""))


class _UnsupportedThing:
    """A hook, client or helper rtstream does not provide: any use of it raises, never a silent no-op."""

    def __init__(self, name: str, reason: str):
        self._name, self._reason = name, reason

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise AirflowException(f"{self._name}.{attr}: {self._reason}")

        return refuse

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise AirflowException(f"{self._name}: {self._reason}")


_made: dict[tuple[str, str], type] = {}


def unsupported(name: str, module: str, why: str | None = None) -> type:
    """The placeholder for `module.name`: an operator made of it is refused at load, any other use raises.
    The reason says what to install to run it through the real Airflow (rtstream.airflow.bridge), or `why` not."""
    key = (module, name)
    if key in _made:
        return _made[key]
    reason = why or (f"rtstream does not run {name} (from {module}) natively; to run it through the real "
                     f"Airflow: {install_command(module)}")
    if why is None and name.startswith("@task."):  # a TaskFlow flavour: not run through Airflow either
        reason = (f"rtstream does not run {name} (only @task, @task.branch, @task.short_circuit, @task.bash, "
                  "@task.sensor, @task.virtualenv and @task.external_python), with or without Airflow installed")

    class Unsupported(BaseOperator, metaclass=_UnsupportedMeta):
        runs_natively = False
        unsupported_reason = reason

        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            if "task_id" not in kwargs:
                return _UnsupportedThing(name, reason)
            return super().__new__(cls)

        def __init__(self, *args: Any, task_id: str, **kwargs: Any):
            known = {k: v for k, v in kwargs.items() if k in ("dag", "task_group", "trigger_rule", "retries")}
            super().__init__(task_id=task_id, **known)

        def execute(self, context: dict[str, Any]) -> Any:
            raise AirflowException(reason)

    Unsupported.__name__ = Unsupported.__qualname__ = name
    Unsupported.__module__ = module
    _made[key] = Unsupported
    return Unsupported
