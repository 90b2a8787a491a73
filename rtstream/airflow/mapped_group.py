"""Mapped task groups: `@task_group` functions' `.expand(...)`, `.expand_kwargs(...)` and `.partial(...)`
(Airflow's `_TaskGroupFactory`, `MappedTaskGroup`, `MappedArgument`).

The group function runs once, with a `MappedArgument` for each expanded argument; every task made in it
is mapped over the group's expansion (one instance per value, or per combination: Airflow's cross
product). Inside the group, instance i gets the i-th value of a MappedArgument, an XComArg of a task of
the same group resolves to that task's instance i (`get_relevant_upstream_map_indexes`), and its
trigger rule looks at instance i of its upstream tasks of the group; outside the group, a task pulls
every instance's value, in map_index order.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from rtstream.airflow.dag_model import TaskGroup
from rtstream.airflow.expand_input import count, value_at
from rtstream.airflow.states import AirflowException
from rtstream.airflow.states import TaskInstanceState as S
from rtstream.airflow.xcom_arg import XComArg, find_xcomargs


class ExpandInput:
    def __init__(self, mapped: dict[str, Any], kwargs_list: Any = None):
        self.mapped, self.kwargs_list = mapped, kwargs_list

    def count(self, context: dict[str, Any]) -> int:
        return count(self.mapped, self.kwargs_list, context)

    def value_at(self, context: dict[str, Any], index: int) -> dict[str, Any]:
        return value_at(self.mapped, self.kwargs_list, context, index)

    def producers(self) -> set[str]:
        return {x.operator.task_id for x in find_xcomargs([self.mapped, self.kwargs_list])}


class MappedArgument(XComArg):
    """An expanded argument of a mapped task group: the value of the running instance's map index."""

    def __init__(self, expand_input: ExpandInput, key: str):
        self.expand_input, self.arg_key = expand_input, key
        super().__init__(None, key)

    def __repr__(self) -> str:
        return f"MappedArgument({self.arg_key!r})"

    def upstream_xcomargs(self) -> list[XComArg]:
        return find_xcomargs([self.expand_input.mapped, self.expand_input.kwargs_list])

    def dep_roots(self) -> list[Any]:
        return [x.operator for x in self.upstream_xcomargs()]

    dep_leaves = dep_roots

    def resolve(self, context: dict[str, Any]) -> Any:
        index = context["ti"].map_index
        row = self.expand_input.value_at(context, index) if 0 <= index < self.expand_input.count(context) else {}
        if self.arg_key not in row:
            raise AirflowException(f"mapped task group argument {self.arg_key!r} has no value at map index {index}")
        return row[self.arg_key]


class MappedTaskGroup(TaskGroup):
    def __init__(self, group_id: str | None, expand_input: ExpandInput, **kwargs: Any):
        super().__init__(group_id, **kwargs)
        self.expand_input = expand_input

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        for task in self.tasks():
            _map_over_group(task, self)


def mapped_group_of(task: Any) -> MappedTaskGroup | None:
    group = getattr(task, "task_group", None)
    while group is not None:
        if isinstance(group, MappedTaskGroup):
            return group
        group = group.parent_group
    return None


def _map_over_group(task: Any, group: MappedTaskGroup) -> None:
    if task.is_mapped:  # Airflow maps it over the group's expansion and its own; rtstream not yet
        task.runs_natively = False
        task.unsupported_reason = (f"a mapped task inside the mapped task group {group.group_id} is not run "
                                   "by rtstream yet")
        return
    task.cls, task.is_mapped, task.mapped_group = type(task), True, group

    def expand_into(context: dict[str, Any]) -> list[Any]:
        return [copy.copy(task) for _ in range(group.expand_input.count(context))]

    task.expand_into = expand_into


def upstream_states(dag: Any, task: Any, ti: Any, tis: dict[str, list[Any]]) -> list[str | None]:
    """The states `ti`'s trigger rule looks at: instance i of an upstream task of the same mapped group
    (or its one unexpanded instance, once decided), every instance of any other upstream task."""
    group = mapped_group_of(task)
    out: list[str | None] = []
    for up in task.upstream_task_ids:
        instances = tis[up]
        if group is not None and mapped_group_of(dag.task_dict[up]) is group:
            keep = (-1,) if ti.map_index < 0 else (ti.map_index, -1)
            instances = [u for u in instances if u.map_index in keep]
        out.extend(u.state for u in instances)
    return out


def group_gate(task: Any, tis: dict[str, list[Any]]) -> str | None:
    """Before a task of a mapped group is expanded: "wait" until the tasks giving the group's expansion
    are done; then None when they all succeeded, else the state the task takes (a failed producer:
    upstream_failed, a skipped one: skipped)."""
    group = getattr(task, "mapped_group", None)
    if group is None:
        return None
    states = [u.state for p in group.expand_input.producers() for u in tis.get(p, [])]
    if any(s in (S.FAILED, S.UPSTREAM_FAILED) for s in states):
        return S.UPSTREAM_FAILED.value
    if any(s == S.SKIPPED for s in states):
        return S.SKIPPED.value
    return None if all(s == S.SUCCESS for s in states) else "wait"


def add_mapping(factory: Any, fn: Callable[..., Any], create: Callable[..., Any],
                partial_kwargs: dict[str, Any] | None = None) -> None:
    """`factory.partial(...)`, `.expand(...)`, `.expand_kwargs(...)` for a `@task_group` function;
    `create(group_factory, *args, **kwargs)` makes the group as a plain call does."""
    fixed = dict(partial_kwargs or {})

    def make(expand_input: ExpandInput, keys: list[str]) -> Any:
        def group_factory(group_id: str, **kwargs: Any) -> MappedTaskGroup:
            return MappedTaskGroup(group_id, expand_input=expand_input, **kwargs)
        return create(group_factory, **fixed, **{k: MappedArgument(expand_input, k) for k in keys})

    def expand(**mapped: Any) -> Any:
        if not mapped:
            raise TypeError("no arguments to expand against")
        if dup := sorted(set(mapped) & set(fixed)):
            raise TypeError(f"mapping already partial argument: {', '.join(dup)}")
        return make(ExpandInput(mapped), list(mapped))

    def expand_kwargs(kwargs_list: Any) -> Any:
        import inspect

        params = [p for p in inspect.signature(fn).parameters.values() if p.name not in fixed]
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
            raise TypeError("calling expand_kwargs() on task group function with * or ** is not supported")
        return make(ExpandInput({}, kwargs_list), [p.name for p in params])

    def partial(**kwargs: Any) -> Any:
        def again(*args: Any, **kw: Any) -> Any:
            return create(None, *args, **{**fixed, **kwargs}, **kw)
        add_mapping(again, fn, create, {**fixed, **kwargs})
        return again

    factory.expand, factory.expand_kwargs, factory.partial = expand, expand_kwargs, partial
