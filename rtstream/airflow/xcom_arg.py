"""`XComArg`: a task's output used as another task's argument (`t.output`, a `@task`'s return value),
pulled from XCom when the consumer runs; a `None` return value resolves to None, as in Airflow."""

from __future__ import annotations

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
