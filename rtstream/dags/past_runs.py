"""The previous run a `depends_on_past` task instance looks at (rtstream.airflow.past_deps), read from
the run store, so the wait holds across restarts and ends when a clear of that run succeeds.

Which run is the previous one is decided once, when the run starts (before any await). Its task
instance states are read again at each check: the store has a row for a task instance once its state
changed; a task that gets an instance in a run that is still running but has no row yet is "not run
yet" (Airflow creates every task instance with the run).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from rtstream.airflow.past_deps import PreviousRun, held_reason
from rtstream.airflow.schedule import time_restriction
from rtstream.airflow.task_dates import _aware, gets_instance
from rtstream.dags.store import RunStore

FINISHED_RUN = ("success", "failed")


class PastRuns:
    def __init__(self, store: RunStore, dag: Any, run_id: str, logical_date: datetime):
        self.store, self.dag = store, dag
        self.catchup = time_restriction(dag)[2]
        this = _aware(logical_date)
        earlier: list[tuple[datetime, str, str, str]] = []
        for rid, ld, run_type, state in store.query(
                "SELECT run_id, logical_date, run_type, state FROM dag_run WHERE dag_id = ? AND run_id != ?",
                (dag.dag_id, run_id)):
            at = _aware(datetime.fromisoformat(ld))
            if at is not None and this is not None and at < this:
                earlier.append((at, rid, run_type, state))
        self.earlier_ids = {rid for _, rid, _, _ in earlier}
        # Airflow: get_previous_scheduled_dagrun (not manual) with catchup, else get_previous_dagrun
        candidates = [e for e in earlier if not self.catchup or e[2] != "manual"]
        self.previous = max(candidates, default=None)

    def _previous_run(self) -> PreviousRun | None:
        if self.previous is None:
            return None
        at, rid, run_type, _ = self.previous
        states: dict[str, list[str | None]] = defaultdict(list)
        for task_id, state in self.store.query("SELECT task_id, state FROM task_instance WHERE dag_id = ? AND "
                                               "run_id = ?", (self.dag.dag_id, rid)):
            states[task_id].append(state)
        run_state = self.store.query("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?",
                                     (self.dag.dag_id, rid))
        if run_state and run_state[0][0] not in FINISHED_RUN:
            for task_id, task in self.dag.task_dict.items():
                if task_id not in states and gets_instance(self.dag, task, at, run_type):
                    states[task_id].append(None)
        return PreviousRun(rid, at, dict(states))

    def held(self, task: Any, ti: Any) -> str | None:
        """Why `ti` may not start yet (depends_on_past / wait_for_downstream), or None."""
        if not getattr(task, "depends_on_past", False):
            return None
        return held_reason(self.dag, task, self._previous_run(), self.catchup,
                           lambda: self._had_instance_before(task.task_id))

    def _had_instance_before(self, task_id: str) -> bool:
        rows = self.store.query("SELECT DISTINCT run_id FROM task_instance WHERE dag_id = ? AND task_id = ?",
                                (self.dag.dag_id, task_id))
        return any(r[0] in self.earlier_ids for r in rows)
