"""Clearing task instances, as Airflow's `clear_task_instances`: the store changes first, in one
transaction, then the scheduler runs the run again from the store (DagScheduler.resume).

A cleared task instance loses its state, its branch or short-circuit decision and its XComs, keeps
its try number (the grid shows every try) and gets its retries again (`max_tries` = tries so far +
retries, as Airflow sets it). A mapped task is expanded again when it runs. The run goes back to
`running` with its start (and so its dagrun_timeout) counted from the clear. A killed daemon finds
the run `running` on its next start and resumes it like any other: the clear is durable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rtstream.airflow.dag_model import DAG
from rtstream.airflow.dag_run import descendants, topological_order
from rtstream.dags.store import RunStore


def to_clear(dag: DAG, task_id: str | None, downstream: bool) -> list[str]:
    """The task ids a clear touches, upstream first: the whole DAG, or a task and (with `downstream`)
    every task after it."""
    order = topological_order(dag)
    if task_id is None:
        return order
    wanted = {task_id} | (descendants(dag, task_id) if downstream else set())
    return [t for t in order if t in wanted]


def clear_in_store(store: RunStore, dag: DAG, run_id: str, task_ids: list[str], now: datetime) -> int:
    """Make the task instances of `task_ids` in this run runnable again; returns how many were cleared."""
    marks = ",".join("?" * len(task_ids))
    scope: tuple[Any, ...] = (dag.dag_id, run_id, *task_ids)
    where = f"dag_id = ? AND run_id = ? AND task_id IN ({marks})"
    with store.transaction() as db:
        rows = db.execute(f"SELECT task_id, map_index, try_number FROM task_instance WHERE {where}", scope).fetchall()
        for task_id, map_index, try_number in rows:
            retries = int(getattr(dag.task_dict[task_id], "retries", 0) or 0)
            db.execute("INSERT OR REPLACE INTO ti_max_tries VALUES (?, ?, ?, ?, ?)",
                       (dag.dag_id, run_id, task_id, map_index, try_number + retries))
        db.execute(f"UPDATE task_instance SET state = NULL, branch = NULL, short_circuit = NULL, updated_at = ? "
                   f"WHERE {where}", (now.isoformat(), *scope))
        db.execute(f"DELETE FROM mapped WHERE {where}", scope)  # expanded again from its upstream when it runs
        db.execute(f"DELETE FROM xcom WHERE {where}", scope)
        db.execute("UPDATE dag_run SET state = 'running', end_date = NULL, start_date = ? WHERE dag_id = ? AND "
                   "run_id = ?", (now.isoformat(), dag.dag_id, run_id))
    return len(rows)
