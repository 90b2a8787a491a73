"""XCom as Airflow keeps it, for one run, and the `ti` a task sees.

Values are kept per (task_id, map_index) and key; `xcom_pull` takes `task_ids` (one id: its value; a
list: a list), `key` (default `return_value`) and `map_indexes` (default: every instance of a mapped
task, as a list in map_index order). With no `task_ids`, the latest value pushed under `key` in the
run is returned, as Airflow 2 does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

RETURN_VALUE = "return_value"


class RunXComs:
    """(task_id, map_index) -> {key: value}, in push order."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, int], dict[str, Any]] = {}
        self._order: list[tuple[str, int, str]] = []
        self.mapped_counts: dict[str, int] = {}  # task_id -> instances, once a mapped task is expanded

    def push(self, task_id: str, map_index: int, key: str, value: Any) -> None:
        self.values.setdefault((task_id, map_index), {})[key] = value
        self._order.append((task_id, map_index, key))

    def of(self, task_id: str, map_index: int) -> dict[str, Any]:
        return dict(self.values.get((task_id, map_index), {}))

    def _one_task(self, task_id: str, key: str, map_indexes: int | Iterable[int] | None, default: Any) -> Any:
        count = self.mapped_counts.get(task_id)
        if count is None:  # not mapped
            return self.values.get((task_id, -1), {}).get(key, default)
        if map_indexes is None:
            return [self.values.get((task_id, i), {}).get(key) for i in range(count)
                    if key in self.values.get((task_id, i), {})]
        if isinstance(map_indexes, int):
            return self.values.get((task_id, map_indexes), {}).get(key, default)
        return [self.values.get((task_id, i), {}).get(key, default) for i in map_indexes]

    def pull(self, task_ids: str | Iterable[str] | None, key: str | None, map_indexes: Any, default: Any) -> Any:
        key = key or RETURN_VALUE
        if task_ids is None:
            for task_id, _, k in reversed(self._order):
                if k == key:
                    return self._one_task(task_id, key, map_indexes, default)
            return default
        if isinstance(task_ids, str):
            return self._one_task(task_ids, key, map_indexes, default)
        return [self._one_task(t, key, map_indexes, default) for t in task_ids]


class TaskInstance:
    """The `ti` / `task_instance` of the context: identity, try number, XCom, and the skips a
    branch or short-circuit asks for (the run applies them when the try succeeds)."""

    def __init__(self, task: Any, run_id: str, map_index: int, xcoms: RunXComs, logical_date: Any):
        self.task, self.task_id, self.dag_id = task, task.task_id, task.dag_id
        self.run_id, self.map_index, self.xcoms = run_id, map_index, xcoms
        self.logical_date = self.execution_date = logical_date
        self.try_number = 0
        self.max_tries = int(getattr(task, "retries", 0) or 0)
        self.state: str | None = None
        self.branch: set[str] | None = None
        self.short_circuit: bool | None = None
        self.log = logging.getLogger(f"airflow.task.{task.dag_id}.{task.task_id}")
        self.dag_run: Any = None

    def __repr__(self) -> str:
        return f"<TaskInstance: {self.dag_id}.{self.task_id} {self.run_id} map_index={self.map_index} [{self.state}]>"

    @property
    def key(self) -> tuple[str, str, str, int, int]:
        return (self.dag_id, self.task_id, self.run_id, self.try_number, self.map_index)

    def xcom_push(self, key: str, value: Any, execution_date: Any = None, **_: Any) -> None:
        self.xcoms.push(self.task_id, self.map_index, key, value)

    def xcom_pull(self, task_ids: str | Iterable[str] | None = None, dag_id: str | None = None,
                  key: str = RETURN_VALUE, include_prior_dates: bool = False, map_indexes: Any = None,
                  default: Any = None, **_: Any) -> Any:
        return self.xcoms.pull(task_ids, key, map_indexes, default)

    def get_dagrun(self, session: Any = None) -> Any:
        return self.dag_run

    def request_branch(self, task_ids: set[str]) -> None:
        self.branch = task_ids

    def request_short_circuit(self, all_downstream: bool) -> None:
        self.short_circuit = all_downstream
