"""The runs `dag` sinks ask for: one run per (DAG, closed window), kept in the DAG store like any run,
and awaited by the sink until it is no longer running (rtstream.model.dag_trigger's `DagTrigger`).

A window's run is created with its `dag_run.conf` (table `dag_run_conf`) and its rows as the XCom
`return_value` of a task id named after the pipeline, in one transaction: a run is never kept without
its input. The run is unique per (dag_id, logical date = the window's start), so a window written
again (a retry, a replay after a restart) finds its run:
- success: nothing to do, the window is written;
- running: the scheduler resumes it on start (rtstream.dags.scheduler); it is awaited;
- failed: a retry of the window is Airflow's "clear" of the run's failed and upstream_failed task
  instances and every task after them (rtstream.dags.clearing), then the same run goes on. Tasks that
  succeeded are not run again, and no other run ever sees the window's rows.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
from datetime import UTC, datetime
from typing import Any

from rtstream.airflow.dag_run import descendants
from rtstream.airflow.states import TaskInstanceState as S
from rtstream.airflow.xcom import RETURN_VALUE
from rtstream.dags.clearing import clear_in_store, to_clear
from rtstream.dags.scheduler import DagScheduler, run_id_of
from rtstream.dags.store import RunStore, StoredRun

log = logging.getLogger("rtstream.dags")

SCHEMA = ("CREATE TABLE IF NOT EXISTS dag_run_conf (dag_id TEXT NOT NULL, run_id TEXT NOT NULL, "
          "conf BLOB NOT NULL, PRIMARY KEY (dag_id, run_id))")
RUN_TYPE = "window"
WAIT_FOR_LOOP_S = 30.0  # the scheduler's loops start with the daemon; this long is a broken start


class WindowRuns:
    """`DagTrigger` over the daemon's scheduler and store."""

    def __init__(self, scheduler: DagScheduler, store: RunStore):
        self.scheduler, self.store = scheduler, store
        with store.transaction() as db:
            db.execute(SCHEMA)
        scheduler.run_conf = self.conf

    def has_dag(self, dag_id: str) -> bool:
        return any(d.dag_id == dag_id for d in self.scheduler.dags)

    def conf(self, dag_id: str, run_id: str) -> dict[str, Any]:
        rows = self.store.query("SELECT conf FROM dag_run_conf WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        return pickle.loads(rows[0][0]) if rows else {}

    async def run_for_window(self, dag_id: str, logical_date: datetime, interval: tuple[datetime, datetime],
                             conf: dict[str, Any], upstream: str, rows: list[dict[str, Any]]) -> str:
        dag = next((d for d in self.scheduler.dags if d.dag_id == dag_id), None)
        if dag is None:
            return f"not run: DAG {dag_id!r} is not scheduled by this daemon"
        await self._loop_started(dag_id)
        stored = self._kept_or_created(dag_id, logical_date, interval, conf, upstream, rows)
        if stored.run_type != RUN_TYPE:
            return f"not run: its logical date is taken by the run {stored.run_id}"
        if stored.state == "success":
            return "success"
        run_id = stored.run_id
        if stored.state == "failed":
            tasks = self._to_retry(dag, run_id)
            clear_in_store(self.store, dag, run_id, tasks, datetime.now(UTC))
            log.warning("%s %s: failed before; clearing %s to run them again for the window", dag_id, run_id,
                        ", ".join(tasks))
        task = self.scheduler.task_of(dag_id, run_id) or \
            self.scheduler.start_kept(dag_id, run_id, "running %s for a window")
        if task is None:
            if self.scheduler.stopping:
                return "running"
            return f"not started: {self.store.run(dag_id, run_id)}"
        # shielded: a sink's timeout or a stop ends the wait, never the run (the next write awaits it again)
        await asyncio.shield(task)
        kept = self.store.run(dag_id, run_id)
        return kept.state if kept is not None else "missing from the store"

    async def _loop_started(self, dag_id: str) -> None:
        """Until the DAG's loop has resumed what a previous process left, so a run is never started twice."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_FOR_LOOP_S
        while not self.scheduler.loop_started(dag_id) and not self.scheduler.stopping:
            if loop.time() > deadline:
                raise TimeoutError(f"the schedule of DAG {dag_id!r} did not start")
            await asyncio.sleep(0.05)

    def _kept_or_created(self, dag_id: str, logical_date: datetime, interval: tuple[datetime, datetime],
                         conf: dict[str, Any], upstream: str, rows: list[dict[str, Any]]) -> StoredRun:
        """The run kept for that logical date, or a new running one with its conf and input XCom."""
        run_id = run_id_of(RUN_TYPE, logical_date)
        conf_blob, rows_blob = pickle.dumps(conf), pickle.dumps(rows)
        now = datetime.now(UTC).isoformat()
        with self.store.transaction() as db:
            db.execute("INSERT OR IGNORE INTO dag_run VALUES (?, ?, ?, ?, ?, ?, 'running', ?, NULL)",
                       (dag_id, run_id, logical_date.isoformat(), interval[0].isoformat(), interval[1].isoformat(),
                        RUN_TYPE, now))
            if db.execute("SELECT changes()").fetchone()[0]:
                db.execute("INSERT OR REPLACE INTO dag_run_conf VALUES (?, ?, ?)", (dag_id, run_id, conf_blob))
                db.execute("INSERT INTO xcom (dag_id, run_id, task_id, map_index, key, value) "
                           "VALUES (?, ?, ?, -1, ?, ?)", (dag_id, run_id, upstream, RETURN_VALUE, rows_blob))
            row = db.execute("SELECT run_id FROM dag_run WHERE dag_id = ? AND logical_date = ?",
                             (dag_id, logical_date.isoformat())).fetchone()
        stored = self.store.run(dag_id, row[0])
        assert stored is not None
        return stored

    def _to_retry(self, dag: Any, run_id: str) -> list[str]:
        """Airflow's "clear failed": the failed or upstream_failed task instances and all after them;
        the whole run when none failed (it ran past its dagrun_timeout, or could not resume)."""
        bad = {ti.task_id for ti in self.store.task_instances(dag.dag_id, run_id)
               if ti.state not in (S.SUCCESS.value, S.SKIPPED.value)}
        if not bad:
            return to_clear(dag, None, True)
        wanted = set(bad)
        for task_id in bad:
            if task_id in dag.task_dict:
                wanted |= descendants(dag, task_id)
        return [t for t in to_clear(dag, None, True) if t in wanted]
