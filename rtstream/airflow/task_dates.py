"""Which tasks get a task instance in a run: Airflow's `DagRun.verify_integrity` creates one only for
a task whose start_date is at or before the run's logical date and whose end_date is not before it
(a backfill takes every task). A task's dates are the later of its own start_date and the DAG's, and
the earlier of the end_dates (`DAG.add_task`); a naive date is UTC (Airflow's default_timezone).

So a DAG whose start_date is after the logical date of `dags test` makes a run with no task instance
at all, which succeeds, as in Airflow (2.10 and 3.3 alike)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _own(task: Any, name: str) -> datetime | None:
    value = getattr(task, name, None)
    if value is None:  # a mapped task keeps its arguments
        value = (getattr(task, "kwargs", None) or {}).get(name)
    return _aware(value)


def task_dates(dag: Any, task: Any) -> tuple[datetime | None, datetime | None]:
    dag_start, dag_end = _aware(dag.start_date), _aware(dag.end_date)
    start, end = _own(task, "start_date"), _own(task, "end_date")
    start = dag_start if start is None else (start if dag_start is None else max(start, dag_start))
    end = dag_end if end is None else (end if dag_end is None else min(end, dag_end))
    return start, end


def gets_instance(dag: Any, task: Any, logical_date: datetime, run_type: str | None = None) -> bool:
    if run_type == "backfill":
        return True
    start, end = task_dates(dag, task)
    when = _aware(logical_date)
    if when is None:
        return True
    return (start is None or start <= when) and (end is None or when <= end)
