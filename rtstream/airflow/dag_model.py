"""The DAG as a DAG file builds it: `DAG`, `TaskGroup`, the `>>` / `<<` arrows, `chain`, `cross_downstream`.

Mirrors `airflow.models.dag.DAG` and `airflow.utils.task_group.TaskGroup` for what a run needs: task
ids (prefixed by their groups), dependencies, `default_args`, `params`, the schedule and start date.
`with DAG(...)` and `with TaskGroup(...)` push onto a context stack that new tasks read, as Airflow's
DagContext does; every DAG entered as a context is remembered (Airflow's `auto_register`), so the
DAG bag finds DAGs that were never assigned to a module global.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from rtstream.airflow.states import AirflowException

NOTSET: Any = type("ArgNotSet", (), {"__repr__": lambda self: "NOTSET"})()
_dag_stack: list[DAG] = []
_group_stack: list[TaskGroup] = []
registered: list[DAG] = []  # every DAG used as a context (auto_register); the DAG bag empties it per file


def current_dag() -> DAG | None:
    return _dag_stack[-1] if _dag_stack else None


def current_group() -> TaskGroup | None:
    return _group_stack[-1] if _group_stack else None


class DependencyMixin:
    """`a >> b`, `a << b`, `[a, b] >> c`, and the same with task groups and XComArgs."""

    def dep_roots(self) -> list[Any]:
        raise NotImplementedError

    def dep_leaves(self) -> list[Any]:
        raise NotImplementedError

    def set_downstream(self, other: Any) -> None:
        for node in _flatten(other):
            if hasattr(node, "update_relative"):  # an edge label: `a >> Label("x") >> b` (EdgeModifier)
                node.update_relative(self)
                continue
            for leaf in self.dep_leaves():
                for root in node.dep_roots():
                    leaf.add_edge_to(root)

    def set_upstream(self, other: Any) -> None:
        for node in _flatten(other):
            node.set_downstream(self)

    def __rshift__(self, other: Any) -> Any:
        self.set_downstream(other)
        return other

    def __lshift__(self, other: Any) -> Any:
        self.set_upstream(other)
        return other

    def __rrshift__(self, other: Any) -> Any:  # [a, b] >> self
        self.set_upstream(other)
        return self

    def __rlshift__(self, other: Any) -> Any:  # [a, b] << self
        self.set_downstream(other)
        return self


def _flatten(other: Any) -> list[DependencyMixin]:
    if isinstance(other, DependencyMixin):
        return [other]
    if isinstance(other, Iterable) and not isinstance(other, (str, bytes)):
        return [n for item in other for n in _flatten(item)]
    raise AirflowException(f"cannot set a dependency on {other!r}: not a task, task group or list of them")


def chain(*elements: Any) -> None:
    """`chain(a, [b, c], d)`: each element downstream of the one before; two lists pair up one to one."""
    for up, down in zip(elements, elements[1:], strict=False):
        if isinstance(up, (list, tuple)) and isinstance(down, (list, tuple)):
            if len(up) != len(down):
                raise AirflowException(f"chain() got lists of different lengths: {len(up)} and {len(down)}")
            for a, b in zip(up, down, strict=True):
                a.set_downstream(b)
        else:
            for a in _flatten(up):
                a.set_downstream(down)


def cross_downstream(from_tasks: Sequence[Any], to_tasks: Any) -> None:
    """Every task of `from_tasks` upstream of every task of `to_tasks`."""
    for task in from_tasks:
        task.set_downstream(to_tasks)


class Param:
    """`airflow.models.param.Param`: a param's default value (its JSON schema is not checked here)."""

    def __init__(self, default: Any = NOTSET, description: str | None = None, **schema: Any):
        self.value = None if default is NOTSET else default
        self.description, self.schema = description, schema

    def resolve(self) -> Any:
        return self.value


def resolve_params(*layers: dict[str, Any] | None) -> dict[str, Any]:
    """Params as a task sees them: later layers win, `Param` objects give their values."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            out[key] = value.resolve() if isinstance(value, Param) else value
    return out


class DAG:
    """A DAG file's `DAG(...)`: its id, tasks in definition order, schedule, dates and defaults."""

    def __init__(self, dag_id: str | None = None, description: str | None = None, schedule: Any = NOTSET,
                 schedule_interval: Any = NOTSET, timetable: Any = None, start_date: datetime | None = None,
                 end_date: datetime | None = None, default_args: dict[str, Any] | None = None,
                 params: dict[str, Any] | None = None, max_active_tasks: int = 16, concurrency: int | None = None,
                 template_searchpath: str | list[str] | None = None,
                 user_defined_macros: dict[str, Any] | None = None,
                 user_defined_filters: dict[str, Any] | None = None, render_template_as_native_obj: bool = False,
                 catchup: bool | None = None, tags: list[str] | None = None, **other: Any):
        if not dag_id:
            raise AirflowException("DAG() needs a dag_id")
        self.dag_id, self.description = str(dag_id), description
        self.schedule = schedule if schedule is not NOTSET else (
            schedule_interval if schedule_interval is not NOTSET else (timetable if timetable is not None else NOTSET))
        self.default_args = dict(default_args or {})
        self.start_date = start_date if start_date is not None else self.default_args.get("start_date")
        self.end_date = end_date if end_date is not None else self.default_args.get("end_date")
        self.params = dict(params or {})
        self.max_active_tasks = concurrency or max_active_tasks
        self.template_searchpath = [template_searchpath] if isinstance(template_searchpath, str) else list(
            template_searchpath or [])
        self.user_defined_macros = dict(user_defined_macros or {})
        self.user_defined_filters = dict(user_defined_filters or {})
        self.render_template_as_native_obj = render_template_as_native_obj
        self.catchup, self.tags, self.other = catchup, list(tags or []), other
        self.task_dict: dict[str, Any] = {}
        self.task_group = TaskGroup(None, dag=self)  # the root group: no id, no prefix
        self.fileloc = ""
        self.airflow_major = 2  # 3 for a file written for Airflow 3 (airflow/airflow3.py), set by the DAG bag

    def __repr__(self) -> str:
        return f"<DAG: {self.dag_id}>"

    def __enter__(self) -> DAG:
        _dag_stack.append(self)
        _group_stack.append(self.task_group)
        if self not in registered:
            registered.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _group_stack.pop()
        _dag_stack.pop()

    def add_task(self, task: Any) -> None:
        if task.task_id in self.task_dict and self.task_dict[task.task_id] is not task:
            raise AirflowException(f"Task id '{task.task_id}' has already been added to the DAG {self.dag_id!r} "
                                   "(DuplicateTaskIdFound)")
        self.task_dict[task.task_id] = task

    def add_tasks(self, tasks: Iterable[Any]) -> None:
        for task in tasks:
            task.dag = self
            self.add_task(task)

    @property
    def tasks(self) -> list[Any]:
        return list(self.task_dict.values())

    @property
    def task_ids(self) -> list[str]:
        return list(self.task_dict)

    def get_task(self, task_id: str) -> Any:
        if task_id not in self.task_dict:
            raise AirflowException(f"Task {task_id} not found in DAG {self.dag_id}")
        return self.task_dict[task_id]

    @property
    def roots(self) -> list[Any]:
        return [t for t in self.tasks if not t.upstream_task_ids]

    @property
    def leaves(self) -> list[Any]:
        return [t for t in self.tasks if not t.downstream_task_ids]

    @property
    def timezone(self) -> Any:
        tz = getattr(self.start_date, "tzinfo", None)
        return tz


class TaskGroup(DependencyMixin):
    """`with TaskGroup("g"):` prefixes its tasks' ids with `g.`; `g >> x` binds its leaves to x."""

    def __init__(self, group_id: str | None, prefix_group_id: bool = True, parent_group: TaskGroup | None = None,
                 dag: DAG | None = None, default_args: dict[str, Any] | None = None, **_: Any):
        self.dag = dag or current_dag()
        self.parent_group = parent_group if parent_group is not None or group_id is None else current_group()
        self.prefix_group_id = prefix_group_id
        self._id = group_id
        self.default_args = dict(default_args or {})
        self.children: list[Any] = []
        if group_id is not None and self.parent_group is not None:
            self.parent_group.children.append(self)

    @property
    def group_id(self) -> str | None:
        if self._id is None:
            return None
        parent = self.parent_group
        if parent is not None and parent.group_id is not None and parent.prefix_group_id:
            return f"{parent.group_id}.{self._id}"
        return self._id

    def child_id(self, label: str) -> str:
        return f"{self.group_id}.{label}" if self.group_id and self.prefix_group_id else label

    def all_defaults(self) -> dict[str, Any]:
        chain_ = []
        group: TaskGroup | None = self
        while group is not None:
            chain_.append(group.default_args)
            group = group.parent_group
        return {k: v for layer in reversed(chain_) for k, v in layer.items()}

    def tasks(self) -> list[Any]:
        out: list[Any] = []
        for child in self.children:
            out.extend(child.tasks() if isinstance(child, TaskGroup) else [child])
        return out

    def dep_roots(self) -> list[Any]:
        ids = {t.task_id for t in self.tasks()}
        return [t for t in self.tasks() if not (t.upstream_task_ids & ids)]

    def dep_leaves(self) -> list[Any]:
        ids = {t.task_id for t in self.tasks()}
        return [t for t in self.tasks() if not (t.downstream_task_ids & ids)]

    def __enter__(self) -> TaskGroup:
        _group_stack.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _group_stack.pop()


def as_timedelta(value: Any) -> timedelta | None:
    """A retry_delay or timeout as a timedelta (Airflow also takes seconds as a number)."""
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)):
        return timedelta(seconds=value)
    raise AirflowException(f"expected a timedelta or seconds, got {value!r}")
