"""`depends_on_past` and `wait_for_downstream`: Airflow 2.10's `PrevDagrunDep`, on what a run store
says about the previous run of the DAG.

A task instance with `depends_on_past` (which `wait_for_downstream` implies) starts only when, in the
previous run (by logical date; with `catchup`, the previous run that was not triggered by hand),
every task instance of the same task succeeded or was skipped, and, with `wait_for_downstream`, so
did every task instance of its immediate downstream tasks. It is free when there is no previous run,
when that run is before the task's start_date (with catchup), or, under
`ignore_first_depends_on_past` (true by default, as `ignore_first_depends_on_past_by_default`),
when the task has never had a task instance before. Otherwise it keeps no state and waits; the
trigger rules still decide upstream_failed and skipped, as Airflow's TriggerRuleDep does first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rtstream.airflow.task_dates import _aware, task_dates

DONE = ("success", "skipped")
NOT_RUN_YET = "depends_on_past is true for this task's DAG, but the previous task instance has not run yet."
DOWNSTREAM = ("The tasks downstream of the previous task instance(s) haven't completed, "
              "and wait_for_downstream is True.")


@dataclass
class PreviousRun:
    run_id: str
    logical_date: datetime
    # task_id -> the states of its task instances in that run (None: not run yet); a task absent here
    # had no task instance in that run
    states: dict[str, list[str | None]] = field(default_factory=dict)


def held_reason(dag: Any, task: Any, previous: PreviousRun | None, catchup: bool,
                had_instance_before: Callable[[], bool]) -> str | None:
    """Why this task instance may not start yet, or None when PrevDagrunDep passes."""
    if not getattr(task, "depends_on_past", False) or previous is None:
        return None
    start = task_dates(dag, task)[0]
    when = _aware(previous.logical_date)
    if catchup and start is not None and when is not None and when < start:
        return None  # the task was not active at the previous run
    states = previous.states.get(task.task_id)
    if not states:
        if getattr(task, "ignore_first_depends_on_past", True) and not had_instance_before():
            return None
        return NOT_RUN_YET
    unsuccessful = sum(1 for s in states if s not in DONE)
    if unsuccessful:
        return (f"depends_on_past is true for this task, but {unsuccessful} previous task instance(s) are not "
                f"in a successful state.")
    if getattr(task, "wait_for_downstream", False) and any(
            s not in DONE for down in task.downstream_task_ids for s in previous.states.get(down, [])):
        return DOWNSTREAM
    return None
