"""What ExternalTaskSensor reads in the daemon (rtstream.airflow.external_sensors.ExternalStates): the
task instances and runs of the DAGs of the run store, counted as Airflow 2.10's `_get_count` does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rtstream.airflow.dag_model import DAG
from rtstream.dags.store import RunStore


class StoredStates:
    def __init__(self, dags: list[DAG], store: RunStore):
        self.by_id = {d.dag_id: d for d in dags}
        self.store = store

    def count(self, dag_id: str, logical_dates: list[datetime], states: list[str], task_ids: list[str] | None,
              group_id: str | None) -> float:
        if not logical_dates:
            return 0
        dates = [(d if d.tzinfo else d.replace(tzinfo=UTC)).astimezone(UTC).isoformat() for d in logical_dates]
        in_dates, in_states = ",".join("?" * len(dates)), ",".join("?" * len(states))
        if not task_ids and not group_id:
            rows = self.store.query(f"SELECT COUNT(*) FROM dag_run WHERE dag_id = ? AND state IN ({in_states}) AND "
                                    f"logical_date IN ({in_dates})", (dag_id, *states, *dates))
            return float(rows[0][0])
        # a task instance never started has no row (Airflow's state None): counted as "none" only by its absence
        sql = (f"SELECT ti.task_id, ti.map_index, ti.state FROM task_instance ti JOIN dag_run r ON r.dag_id = "
               f"ti.dag_id AND r.run_id = ti.run_id WHERE ti.dag_id = ? AND r.logical_date IN ({in_dates})")
        rows = self.store.query(sql, (dag_id, *dates))
        if task_ids:
            hits = sum(1 for t, _, s in rows if t in task_ids and (s or "none") in states)
            return hits / len(task_ids)
        dag = self.by_id.get(dag_id)
        group = _group(dag, group_id) if dag is not None and group_id else None
        if group is None:
            return 0  # Airflow waits for [(group_id, -1)], which never matches: the sensor times out
        members = {t.task_id for t in group.tasks()}
        tis = [(t, m, s) for t, m, s in rows if t in members]
        if not tis:
            return 0
        return sum(1 for _, _, s in tis if (s or "none") in states) / len(tis)


    def missing(self, dag_id: str, task_ids: list[str] | None, group_id: str | None) -> str | None:
        dag = self.by_id.get(dag_id)
        if dag is None:
            return f"The external DAG {dag_id} does not exist."
        for task_id in task_ids or []:
            if task_id not in dag.task_dict:
                return f"The external task {task_id} in DAG {dag_id} does not exist."
        if group_id and _group(dag, group_id) is None:
            return f"The external task group '{group_id}' in DAG '{dag_id}' does not exist."
        return None


def _group(dag: DAG, group_id: str) -> Any:
    todo = [dag.task_group]
    while todo:
        g = todo.pop()
        if g.group_id == group_id:
            return g
        todo.extend(c for c in g.children if hasattr(c, "children") and hasattr(c, "tasks"))
    return None
