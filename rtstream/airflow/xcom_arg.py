"""`XComArg`: a task's output used as another task's argument (`t.output`, a `@task`'s return value),
pulled from XCom when the consumer runs; a `None` return value resolves to None, as in Airflow.
`.map(f)`, `.zip(...)` and `.concat(...)` give lazy sequences over return values (below)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rtstream.airflow.dag_model import NOTSET, DependencyMixin

RETURN_VALUE = "return_value"


def find_xcomargs(value: Any) -> list[XComArg]:
    if isinstance(value, XComArg):
        return value.upstream_xcomargs()
    if isinstance(value, dict):
        return [x for v in value.values() for x in find_xcomargs(v)]
    if isinstance(value, (list, tuple, set)):
        return [x for v in value for x in find_xcomargs(v)]
    return []


class XComArg(DependencyMixin):
    """A task's output as an argument (`t.output`, a `@task`'s return): pulled when the consumer runs."""

    def __init__(self, operator: Any, key: str = RETURN_VALUE):
        self.operator, self.key = operator, key

    def __repr__(self) -> str:
        return f"XComArg({self.operator.task_id!r}, {self.key!r})"

    def upstream_xcomargs(self) -> list[XComArg]:
        """The task outputs this argument stands for (a mapped task group's argument: its expansion's)."""
        return [self]

    def map(self, f: Callable[[Any], Any]) -> XComArg:
        """A lazy sequence of `f(item)` (Airflow's MapXComArg)."""
        _return_value_only(self)
        return MapXComArg(self, [f])

    def zip(self, *others: XComArg, fillvalue: Any = NOTSET) -> XComArg:
        """A lazy sequence of tuples, as zip (zip_longest with a fillvalue)."""
        _return_value_only(self)
        return ZipXComArg([self, *others], fillvalue=fillvalue)

    def concat(self, *others: XComArg) -> XComArg:
        _return_value_only(self)
        return ConcatXComArg([self, *others])

    def __getitem__(self, key: str) -> XComArg:
        return XComArg(self.operator, key)

    def __iter__(self) -> Any:
        raise TypeError("'XComArg' object is not iterable: its value exists only when the task runs")

    def dep_roots(self) -> list[Any]:
        return [self.operator]

    def as_setup(self) -> XComArg:
        self.operator.as_setup()
        return self

    def as_teardown(self, *, setups: Any = NOTSET, on_failure_fail_dagrun: Any = NOTSET) -> XComArg:
        self.operator.as_teardown(setups=setups, on_failure_fail_dagrun=on_failure_fail_dagrun)
        return self

    def __enter__(self) -> XComArg:  # `with teardown(setup()):`
        self.operator.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.operator.__exit__(*exc)

    dep_leaves = dep_roots

    def resolve(self, context: dict[str, Any]) -> Any:
        ti = context["ti"]
        group = getattr(self.operator, "mapped_group", None)
        if group is not None and ti.map_index >= 0 and getattr(ti.task, "mapped_group", None) is group:
            # a task of the same mapped task group: its instance of this map index (Airflow's
            # get_relevant_upstream_map_indexes), not every instance
            return ti.xcom_pull(task_ids=self.operator.task_id, key=self.key, map_indexes=ti.map_index)
        return ti.xcom_pull(task_ids=self.operator.task_id, key=self.key)


def resolve_xcomargs(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, XComArg):
        return value.resolve(context)
    if isinstance(value, dict):
        return {k: resolve_xcomargs(v, context) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(resolve_xcomargs(v, context) for v in value)
    return value


# `.map()`, `.zip()`, `.concat()`: lazy sequences over upstream return values. As in Airflow, each item is
# computed when it is read: a mapped task expanded over `x.map(f)` calls `f` once per instance, when that
# instance runs, and an AirflowSkipException from `f` skips that instance alone (airflow/expand_input.py).

def _return_value_only(arg: XComArg) -> None:
    if arg.key != RETURN_VALUE:
        raise ValueError("cannot map against non-return XCom")


def _checked(value: Any, what: str) -> Sequence[Any] | dict[Any, Any]:
    if isinstance(value, dict) or (isinstance(value, Sequence) and not isinstance(value, (str, bytes))):
        return value
    raise ValueError(f"XCom {what} expects sequence or dict, not {type(value).__name__}")


class _MapResult(Sequence[Any]):
    def __init__(self, value: Sequence[Any] | dict[Any, Any], callables: list[Callable[[Any], Any]]):
        self.value, self.callables = value, callables

    def __getitem__(self, index: Any) -> Any:
        value = self.value[index]
        for f in self.callables:
            value = f(value)
        return value

    def __len__(self) -> int:
        return len(self.value)


class _ZipResult(Sequence[Any]):
    def __init__(self, values: list[Any], fillvalue: Any):
        self.values, self.fillvalue = values, fillvalue

    def __getitem__(self, index: Any) -> Any:
        if index >= len(self):
            raise IndexError(index)
        out = []
        for value in self.values:
            try:
                out.append(value[index])
            except (IndexError, KeyError):
                out.append(self.fillvalue)
        return tuple(out)

    def __len__(self) -> int:
        lengths = [len(v) for v in self.values]
        return max(lengths) if self.fillvalue is not NOTSET else min(lengths)


class _ConcatResult(Sequence[Any]):
    def __init__(self, values: list[Any]):
        self.values = values

    def __getitem__(self, index: Any) -> Any:
        if index < 0:
            index += len(self)
        for value in self.values:
            if index < len(value):
                return value[index]
            index -= len(value)
        raise IndexError(index)

    def __len__(self) -> int:
        return sum(len(v) for v in self.values)


class MapXComArg(XComArg):
    def __init__(self, arg: XComArg, callables: list[Callable[[Any], Any]]):
        for f in callables:
            if getattr(f, "_airflow_is_task_decorator", False) or type(f).__name__ == "TaskDecorator":
                raise ValueError("map() argument must be a plain function, not a @task operator")
        super().__init__(arg.operator, arg.key)
        self.arg, self.callables = arg, callables

    def upstream_xcomargs(self) -> list[XComArg]:
        return self.arg.upstream_xcomargs()

    def map(self, f: Callable[[Any], Any]) -> MapXComArg:
        return MapXComArg(self.arg, [*self.callables, f])

    def resolve(self, context: dict[str, Any]) -> Any:
        return _MapResult(_checked(self.arg.resolve(context), "map"), self.callables)


class ZipXComArg(XComArg):
    def __init__(self, args: list[XComArg], fillvalue: Any = NOTSET):
        super().__init__(args[0].operator, args[0].key)
        self.args, self.fillvalue = args, fillvalue

    def upstream_xcomargs(self) -> list[XComArg]:
        return [x for a in self.args for x in a.upstream_xcomargs()]

    def dep_roots(self) -> list[Any]:
        return [x.operator for x in self.upstream_xcomargs()]

    dep_leaves = dep_roots

    def resolve(self, context: dict[str, Any]) -> Any:
        return _ZipResult([_checked(a.resolve(context), "zip") for a in self.args], self.fillvalue)


class ConcatXComArg(ZipXComArg):
    def __init__(self, args: list[XComArg]):
        super().__init__(args)

    def resolve(self, context: dict[str, Any]) -> Any:
        return _ConcatResult([_checked(a.resolve(context), "concat") for a in self.args])
