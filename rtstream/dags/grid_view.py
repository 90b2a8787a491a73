"""The DAGs as the admin server reads them (rtstream.model.dag_status.DagsView): Airflow's grid
(runs as columns, task instances as cells), one run's task instances with their tries, log lines and
XComs, the metrics' counts, and clear. Reads go to the run store (from a thread of the server);
clear runs on the event loop, where the scheduler lives.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson

from rtstream.airflow.dag_model import DAG
from rtstream.airflow.dag_run import topological_order
from rtstream.airflow.schedule import next_run
from rtstream.airflow.timetable import describe
from rtstream.dags.clearing import clear_in_store, to_clear
from rtstream.dags.recursive_clear import dependent_clears
from rtstream.dags.scheduler import DagScheduler
from rtstream.dags.store import RunStore
from rtstream.dags.tries import TryRecorder
from rtstream.dags.triggering import DagTriggers, Trigger, run_doc
from rtstream.model.dag_status import ClearRefused, DagCounts

DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)
# the state a mapped task's cell shows, most telling first (as Airflow's grid summarises a mapped task)
SUMMARY = ["failed", "upstream_failed", "up_for_retry", "running", "scheduled", None, "success", "skipped"]


def _shown(value: Any) -> Any:
    """An XCom as JSON shows it; a value JSON cannot carry (a set, a dict with int keys, an object) as its repr."""
    try:
        orjson.dumps(value)
        return value
    except TypeError:
        return repr(value)


def _summary(states: list[str | None]) -> str | None:
    return min(states, key=lambda s: SUMMARY.index(s) if s in SUMMARY else 0) if states else None


class DagGrid:
    def __init__(self, dags: list[DAG], not_scheduled: list[dict[str, str]], store: RunStore,
                 scheduler: DagScheduler, tries: TryRecorder):
        self.by_id = {d.dag_id: d for d in dags}
        self.order = {d.dag_id: topological_order(d) for d in dags}
        self.not_scheduled, self.store, self.scheduler, self.tries = not_scheduled, store, scheduler, tries

    # -- reads ----------------------------------------------------------------------------------
    def dags(self) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        out = []
        for dag_id, dag in self.by_id.items():
            nxt = next_run(dag, self.store.last_scheduled_interval(dag_id), now)
            states = dict(self.store.query("SELECT state, COUNT(*) FROM dag_run WHERE dag_id = ? GROUP BY state",
                                           (dag_id,)))
            latest = self.store.query("SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY logical_date "
                                      "DESC LIMIT 1", (dag_id,))
            out.append({"dag_id": dag_id, "schedule": describe(dag), "timezone": str(dag.timezone or UTC),
                        "next_run": None if nxt is None else {
                            "logical_date": nxt.logical_date.isoformat(), "run_after": nxt.run_after.isoformat(),
                            "data_interval_start": nxt.interval_start.isoformat(),
                            "data_interval_end": nxt.interval_end.isoformat()},
                        "tasks": self.order[dag_id], "runs_by_state": states,
                        "latest_run": {"run_id": latest[0][0], "state": latest[0][1]} if latest else None})
        return out

    def runs(self, dag_id: str, limit: int, before: str | None) -> dict[str, Any] | None:
        if dag_id not in self.by_id:
            return None
        sql, args = "SELECT * FROM dag_run WHERE dag_id = ?", [dag_id]
        if before is not None:
            sql, args = sql + " AND logical_date < ?", [*args, before]
        rows = self.store.query(sql + " ORDER BY logical_date DESC LIMIT ?", (*args, limit))
        runs = [self._run_doc(r) for r in rows]
        if runs:
            marks = ",".join("?" * len(runs))
            tis = self.store.query(f"SELECT run_id, task_id, state, try_number FROM task_instance WHERE dag_id = ? "
                                   f"AND run_id IN ({marks})", (dag_id, *(r["run_id"] for r in runs)))
            cells: dict[tuple[str, str], list[tuple[str | None, int]]] = {}
            for run_id, task_id, state, tries in tis:
                cells.setdefault((run_id, task_id), []).append((state, tries))
            for run in runs:
                run["task_instances"] = {}
                for task_id in self.order[dag_id]:
                    got = cells.get((run["run_id"], task_id), [])
                    doc: dict[str, Any] = {"state": _summary([s for s, _ in got]), "tries": max((t for _, t in got),
                                                                                             default=0)}
                    if len(got) > 1:
                        doc["mapped"] = dict(Counter(str(s) for s, _ in got))
                    run["task_instances"][task_id] = doc
        more = len(runs) == limit
        return {"dag_id": dag_id, "tasks": self.order[dag_id], "runs": runs,
                "next_before": runs[-1]["logical_date"] if more and runs else None}

    def run(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        if dag_id not in self.by_id:
            return None
        rows = self.store.query("SELECT * FROM dag_run WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        if not rows:
            return None
        doc = self._run_doc(rows[0])
        xcoms: dict[tuple[str, int], dict[str, Any]] = {}
        for task_id, map_index, key, value in self.store.xcoms(dag_id, run_id):
            xcoms.setdefault((task_id, map_index), {})[key] = _shown(value)
        tries: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for r in self.store.query("SELECT task_id, map_index, try_number, state, start_date, end_date, duration, log "
                                  "FROM task_try WHERE dag_id = ? AND run_id = ? ORDER BY try_number",
                                  (dag_id, run_id)):
            live = self.tries.live.get((dag_id, run_id, r[0], r[1], r[2]))
            log = r[7].split("\n") if r[7] is not None else (live.text_lines() if live is not None else [])
            tries.setdefault((r[0], r[1]), []).append({"try_number": r[2], "state": r[3], "start_date": r[4],
                                                      "end_date": r[5], "duration": r[6], "log": log})
        known = {(t.task_id, t.map_index): t for t in self.store.task_instances(dag_id, run_id)}
        tis = []
        for task_id in self.order[dag_id]:
            indexes = sorted(m for t, m in known if t == task_id) or [-1]
            for map_index in indexes:
                ti = known.get((task_id, map_index))
                tis.append({"task_id": task_id, "map_index": map_index, "state": ti.state if ti else None,
                            "try_number": ti.try_number if ti else 0, "tries": tries.get((task_id, map_index), []),
                            "xcom": xcoms.get((task_id, map_index), {})})
        doc["task_instances"] = tis
        doc["conf"] = _shown(self.triggers.conf(dag_id, run_id)) if self.triggers is not None else {}
        return doc

    @staticmethod
    def _run_doc(row: tuple[Any, ...]) -> dict[str, Any]:
        return {"run_id": row[1], "logical_date": row[2], "data_interval_start": row[3], "data_interval_end": row[4],
                "run_type": row[5], "state": row[6], "start_date": row[7], "end_date": row[8]}

    def counts(self) -> DagCounts:
        runs = {(d, s): n for d, s, n in self.store.query(
            "SELECT dag_id, state, COUNT(*) FROM dag_run GROUP BY dag_id, state", ())}
        tis = {(d, t, s or "none"): n for d, t, s, n in self.store.query(
            "SELECT dag_id, task_id, state, COUNT(*) FROM task_instance GROUP BY dag_id, task_id, state", ())}
        cols = ", ".join(f"SUM(duration <= {b})" for b in DURATION_BUCKETS)
        durations = {}
        for row in self.store.query(f"SELECT dag_id, task_id, COUNT(*), SUM(duration), {cols} FROM task_try "
                                    f"WHERE duration IS NOT NULL GROUP BY dag_id, task_id", ()):
            buckets = [(b, int(n or 0)) for b, n in zip(DURATION_BUCKETS, row[4:], strict=True)]
            durations[(row[0], row[1])] = (buckets, int(row[2]), float(row[3] or 0.0))
        return DagCounts(runs, tis, durations)

    # -- trigger (rtstream.dags.triggering) ---------------------------------------------------------
    triggers: DagTriggers | None = None  # set by the daemon once its loop runs

    def knows(self, dag_id: str) -> bool:
        return dag_id in self.by_id

    def trigger(self, dag_id: str, conf: dict[str, Any], logical_date: datetime | None, run_id: str | None,
                interval: tuple[datetime, datetime] | None) -> dict[str, Any]:
        if self.triggers is None or self.scheduler.stopping:
            raise ClearRefused(503, "the daemon is starting or stopping: trigger the run again in a moment")
        stored = self.triggers.trigger(Trigger(dag_id, conf, logical_date, run_id, interval))
        return run_doc(stored, conf)

    # -- clear (on the event loop, beside the scheduler) -------------------------------------------
    def clear(self, dag_id: str, run_id: str, task_id: str | None, downstream: bool,
              recursive: bool = False) -> dict[str, Any]:
        dag = self.by_id.get(dag_id)
        if dag is None:
            raise ClearRefused(404, f"no DAG {dag_id!r} runs in this daemon")
        stored = self.store.run(dag_id, run_id)
        if stored is None:
            raise ClearRefused(404, f"DAG {dag_id} has no run {run_id!r}")
        if task_id is not None and task_id not in dag.task_dict:
            raise ClearRefused(404, f"DAG {dag_id} has no task {task_id!r} (tasks: {', '.join(self.order[dag_id])})")
        if self.scheduler.stopping:
            raise ClearRefused(503, "the daemon is stopping: clear after its next start")
        if self.scheduler.is_active(dag_id, run_id):
            raise ClearRefused(409, f"run {run_id} of {dag_id} is running: clear it once it has finished")
        # no await from here on: the store changes, then the scheduler starts the run from the store
        task_ids = to_clear(dag, task_id, downstream)
        # ExternalTaskMarkers' runs in other DAGs (Airflow's recursive clear), all decided before any change
        others = dependent_clears(self.by_id, self.store, self.scheduler.is_active, dag, run_id, task_ids) \
            if recursive else []
        now = datetime.now(UTC)
        cleared = clear_in_store(self.store, dag, run_id, task_ids, now)
        self.scheduler.resume(dag_id, run_id)
        also = []
        for other, other_run, other_tasks in others:
            n = clear_in_store(self.store, other, other_run, other_tasks, now)
            self.scheduler.resume(other.dag_id, other_run)
            also.append({"dag_id": other.dag_id, "run_id": other_run, "cleared_tasks": other_tasks,
                         "task_instances_cleared": n})
        return {"dag_id": dag_id, "run_id": run_id, "cleared_tasks": task_ids, "task_instances_cleared": cleared,
                "state": "running", **({"recursive": also} if recursive else {})}
