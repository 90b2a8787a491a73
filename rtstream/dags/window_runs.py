"""The runs `dag` sinks ask for: one run per (DAG, closed window), kept in the DAG store like any run,
and awaited by the sink until it is no longer running (rtstream.model.dag_trigger's `DagTrigger`).

A window's run is created with its `dag_run.conf` (table `dag_run_conf`) and its rows as the XCom
`return_value` of a task id named after the pipeline, in one transaction: a run is never kept without
its input. A window's run is started by its window's write, never resumed by the scheduler at start
(a replay may bring other rows); what a write does is `_run_for_rows`: rows a successful run of the
window had are dropped; the rest join the window's unfinished run with these very rows (running or
killed: resumed and awaited; failed: a retry is Airflow's "clear" of its failed and upstream_failed
task instances and every task after them, rtstream.dags.clearing, then the same run goes on), else
replace the input of the window's unfinished run (all of it runs again), else are a new piece of the
window at its start + n microseconds. No row reaches two successful runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import pickle
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from rtstream.airflow.dag_run import descendants
from rtstream.airflow.states import TaskInstanceState as S
from rtstream.airflow.xcom import RETURN_VALUE
from rtstream.dags.clearing import clear_in_store, to_clear
from rtstream.dags.scheduler import DagScheduler, run_id_of
from rtstream.dags.store import RunStore

log = logging.getLogger("rtstream.dags")

SCHEMA = ("CREATE TABLE IF NOT EXISTS dag_run_conf (dag_id TEXT NOT NULL, run_id TEXT NOT NULL, "
          "conf BLOB NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (dag_id, run_id))")
PIECES = timedelta(milliseconds=1)  # the pieces of one window: its start + 0, 1, 2 ... microseconds


def row_digest(row: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(row, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


def rows_digest(rows: list[dict[str, Any]]) -> str:
    """The same rows in any order give the same digest (a replay may merge partitions in another order)."""
    return hashlib.sha256("\n".join(sorted(map(row_digest, rows))).encode()).hexdigest()
RUN_TYPE = "window"
WAIT_FOR_LOOP_S = 30.0  # the scheduler's loops start with the daemon; this long is a broken start


class WindowRuns:
    """`DagTrigger` over the daemon's scheduler and store."""

    def __init__(self, scheduler: DagScheduler, store: RunStore):
        self.scheduler, self.store = scheduler, store
        with store.transaction() as db:
            db.execute(SCHEMA)
        scheduler.run_conf = self.conf
        scheduler.started_by_others.add(RUN_TYPE)  # a window's run starts when its window is written

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
        while True:
            run_id, todo, rows = self._run_for_rows(dag, logical_date, interval, conf, upstream, rows)
            if todo == "taken":
                return f"not run: its logical date is taken by the run {run_id}"
            if todo == "done":
                return "success"
            task = self.scheduler.task_of(dag_id, run_id)
            if task is not None and todo in ("retry", "replace"):
                await asyncio.shield(task)  # e.g. cleared from the grid meanwhile: let it end, then decide again
                continue
            break
        if todo == "retry":
            self._clear(dag, run_id, self._to_retry(dag, run_id), "failed before")
        elif todo == "replace":
            self._replace_input(dag, run_id, {**conf, "rows": rows}, upstream, rows)
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
        """Until the DAG's loop has started (a kept run can be started only then)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_FOR_LOOP_S
        while not self.scheduler.loop_started(dag_id) and not self.scheduler.stopping:
            if loop.time() > deadline:
                raise TimeoutError(f"the schedule of DAG {dag_id!r} did not start")
            await asyncio.sleep(0.05)

    def _run_for_rows(self, dag: Any, start: datetime, interval: tuple[datetime, datetime], conf: dict[str, Any],
                      upstream: str, rows: list[dict[str, Any]]) -> tuple[str, str, list[dict[str, Any]]]:
        """(the run this write is for, what it needs: done, resume, retry, replace or taken, the rows it
        gets: those no successful run of the window had). No await
        between what is read here and what is written, so two writes never decide on the same run.

        A window may reach the sink in pieces (a partition's share closes by its own watermark, e.g.
        after a rebalance), and a replay after a restart may close it in other pieces than the process
        before. So a write joins the window's run that has its very rows; else the window's run that has
        not succeeded, whose rows were never delivered (its input is replaced and all of it runs again);
        else it is a new piece: a run of its own, its logical date one microsecond after the last."""
        dag_id = dag.dag_id
        kept = self.store.query(
            "SELECT r.run_id, r.state, r.run_type, c.digest FROM dag_run r LEFT JOIN dag_run_conf c ON "
            "c.dag_id = r.dag_id AND c.run_id = r.run_id WHERE r.dag_id = ? AND r.logical_date >= ? AND "
            "r.logical_date < ? ORDER BY r.logical_date",
            (dag_id, start.isoformat(), (start + PIECES).isoformat()))
        if kept and kept[0][2] != RUN_TYPE:
            return kept[0][0], "taken", rows
        succeeded = [r[0] for r in kept if r[1] == "success"]
        rows = self._not_delivered(dag_id, succeeded, upstream, rows)
        if not rows and succeeded:  # (a window with no rows at all still gets its run, once)
            return succeeded[0], "done", rows
        digest = rows_digest(rows)
        for run_id, state, _, kept_digest in kept:
            if kept_digest == digest and state != "success":
                return run_id, ("retry" if state == "failed" else "resume"), rows
        for run_id, state, _, _ in kept:
            if state != "success":
                return run_id, "replace", rows
        piece = len(kept)
        run_id = run_id_of(RUN_TYPE, start) + (f"__{piece}" if piece else "")
        at = start + timedelta(microseconds=piece)
        with self.store.transaction() as db:
            db.execute("INSERT INTO dag_run VALUES (?, ?, ?, ?, ?, ?, 'running', ?, NULL)",
                       (dag_id, run_id, at.isoformat(), interval[0].isoformat(), interval[1].isoformat(),
                        RUN_TYPE, datetime.now(UTC).isoformat()))
            self._set_input(db, dag_id, run_id, {**conf, "rows": rows}, upstream, rows, digest)
        return run_id, "resume", rows

    def _not_delivered(self, dag_id: str, succeeded: list[str], upstream: str,
                       rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows no successful run of the window had: a window written, then replayed before its
        positions were committed, comes again whole (or in other pieces); what a run had is not sent twice."""
        if not succeeded:
            return rows
        had: Counter[str] = Counter()
        for run_id in succeeded:
            got = self.store.query("SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND "
                                   "map_index = -1 AND key = ?", (dag_id, run_id, upstream, RETURN_VALUE))
            had.update(row_digest(r) for blob in got for r in pickle.loads(blob[0]))
        left = []
        for r in rows:
            d = row_digest(r)
            if had[d] > 0:
                had[d] -= 1
            else:
                left.append(r)
        return left

    @staticmethod
    def _set_input(db: Any, dag_id: str, run_id: str, conf: dict[str, Any], upstream: str,
                   rows: list[dict[str, Any]], digest: str) -> None:
        db.execute("INSERT OR REPLACE INTO dag_run_conf VALUES (?, ?, ?, ?)",
                   (dag_id, run_id, pickle.dumps(conf), digest))
        db.execute("DELETE FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ?", (dag_id, run_id, upstream))
        db.execute("INSERT INTO xcom (dag_id, run_id, task_id, map_index, key, value) VALUES (?, ?, ?, -1, ?, ?)",
                   (dag_id, run_id, upstream, RETURN_VALUE, pickle.dumps(rows)))

    def _replace_input(self, dag: Any, run_id: str, conf: dict[str, Any], upstream: str,
                       rows: list[dict[str, Any]]) -> None:
        """A run that never succeeded, for other rows of its window than this write's: this write's rows
        become its input and every task runs again (those that succeeded saw the other rows)."""
        with self.store.transaction() as db:
            self._set_input(db, dag.dag_id, run_id, conf, upstream, rows, rows_digest(rows))
        self._clear(dag, run_id, to_clear(dag, None, True), "kept other rows of the window (a replay closed it "
                                                            "in other pieces)")

    def _clear(self, dag: Any, run_id: str, tasks: list[str], why: str) -> None:
        clear_in_store(self.store, dag, run_id, tasks, datetime.now(UTC))
        log.warning("%s %s: %s; clearing %s to run them again for the window", dag.dag_id, run_id, why,
                    ", ".join(tasks))

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
