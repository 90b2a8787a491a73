"""Triggered DAG runs, as Airflow 2.10's `POST /api/v1/dags/{dag_id}/dagRuns` and `trigger_dag` make
them: run_type `manual`, run_id `manual__<logical date>` unless one is given, the data interval
`infer_manual_data_interval(logical date)` unless one is given, `dag_run.conf` = the conf, and the run
created `queued`.

The run and its conf are written in one transaction (table `dag_run_conf`, which window runs share),
after the checks Airflow makes (the DAG exists; no run of it has that run id or that logical date), with
no await in between. The DAG's scheduler loop then starts it as soon as a `max_active_runs` slot is
free (`RunStore.take_queued`); a kill before that leaves it queued, a kill after it leaves it running:
either way the next start runs it once. A trigger may come from the event loop (the admin API) or
from a task's thread (TriggerDagRunOperator): the store has its lock, the wake-up goes through the loop.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rtstream.airflow.states import AirflowException
from rtstream.airflow.timetable import manual_data_interval
from rtstream.airflow.trigger_operators import DagNotFound, DagRunAlreadyExists
from rtstream.dags.clearing import clear_in_store, to_clear
from rtstream.dags.scheduler import DagScheduler, run_id_of
from rtstream.dags.store import RunStore, StoredRun
from rtstream.dags.window_runs import SCHEMA as CONF_SCHEMA
from rtstream.model.dag_status import ClearRefused

log = logging.getLogger("rtstream.dags")

# Airflow's [scheduler] allowed_run_id_pattern (default) and DagRun's built-in RUN_ID_REGEX
ALLOWED_RUN_ID = re.compile(r"^[A-Za-z0-9_.~:+-]+$")
MAX_RUN_ID = 250  # dag_run.run_id is a String(250) in Airflow's metadata DB
RUN_TYPE = "manual"


class TriggerRefused(ClearRefused):
    """A trigger that cannot be done: `status` is the HTTP status (404, 409, 400, 503)."""


@dataclass(frozen=True)
class Trigger:
    """What a trigger asks for; None = Airflow's default."""

    dag_id: str
    conf: dict[str, Any]
    logical_date: datetime | None = None
    run_id: str | None = None
    interval: tuple[datetime, datetime] | None = None


def run_doc(stored: StoredRun, conf: dict[str, Any], end_date: str | None = None) -> dict[str, Any]:
    """The run as Airflow's REST API shows it (DAGRunSchema)."""
    at = stored.logical_date.isoformat()
    return {"dag_run_id": stored.run_id, "dag_id": stored.dag_id, "logical_date": at, "execution_date": at,
            "data_interval_start": stored.interval_start.isoformat(),
            "data_interval_end": stored.interval_end.isoformat(), "run_type": stored.run_type,
            "state": stored.state, "start_date": stored.start_date.isoformat() if stored.state != "queued" else None,
            "end_date": end_date, "external_trigger": True, "conf": conf, "note": None}


class DagTriggers:
    """Creates triggered runs in the daemon's store and wakes the DAG's scheduler loop."""

    def __init__(self, scheduler: DagScheduler, store: RunStore):
        self.scheduler, self.store = scheduler, store
        self.loop = asyncio.get_running_loop()
        with store.transaction() as db:
            db.execute(CONF_SCHEMA)
        scheduler.run_conf = self.conf

    def has_dag(self, dag_id: str) -> bool:
        return any(d.dag_id == dag_id for d in self.scheduler.dags)

    def conf(self, dag_id: str, run_id: str) -> dict[str, Any]:
        rows = self.store.query("SELECT conf FROM dag_run_conf WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        return pickle.loads(rows[0][0]) if rows else {}

    def trigger(self, want: Trigger) -> StoredRun:
        """Create the run (queued) or raise TriggerRefused; callable from any thread."""
        dag = next((d for d in self.scheduler.dags if d.dag_id == want.dag_id), None)
        if dag is None:
            raise TriggerRefused(404, f"DAG with dag_id: '{want.dag_id}' not found in this daemon")
        at = want.logical_date or datetime.now(UTC)
        if at.tzinfo is None:
            raise TriggerRefused(400, "logical_date: a naive datetime is disallowed (give its offset, e.g. +00:00)")
        at = at.astimezone(UTC)
        run_id = want.run_id or run_id_of(RUN_TYPE, at)
        if len(run_id) > MAX_RUN_ID or not ALLOWED_RUN_ID.match(run_id):
            raise TriggerRefused(400, f"dag_run_id: {run_id[:60]!r} is invalid: it must match "
                                      f"{ALLOWED_RUN_ID.pattern} (at most {MAX_RUN_ID} characters)")
        start, end = want.interval or manual_data_interval(dag, at)
        conf_blob = pickle.dumps(dict(want.conf))
        now = datetime.now(UTC)
        with self.store.transaction() as db:
            taken = db.execute("SELECT run_id, logical_date FROM dag_run WHERE dag_id = ? AND "
                               "(run_id = ? OR logical_date = ?) LIMIT 1",
                               (dag.dag_id, run_id, at.isoformat())).fetchone()
            if taken is None:
                db.execute("INSERT INTO dag_run VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, NULL)",
                           (dag.dag_id, run_id, at.isoformat(), start.astimezone(UTC).isoformat(),
                            end.astimezone(UTC).isoformat(), RUN_TYPE, now.isoformat()))
                db.execute("INSERT OR REPLACE INTO dag_run_conf VALUES (?, ?, ?, '')", (dag.dag_id, run_id, conf_blob))
        if taken is not None:
            if taken[1] == at.isoformat():
                raise TriggerRefused(409, f"DAGRun with DAG ID: '{dag.dag_id}' and DAGRun logical date: "
                                          f"'{at.isoformat(sep=' ')}' already exists (run {taken[0]})")
            raise TriggerRefused(409, f"DAGRun with DAG ID: '{dag.dag_id}' and DAGRun ID: '{run_id}' already exists")
        log.info("%s: run %s triggered (queued)", dag.dag_id, run_id)
        self._wake(dag.dag_id)
        stored = self.store.run(dag.dag_id, run_id)
        assert stored is not None
        return stored

    def _wake(self, dag_id: str) -> None:
        try:
            on_loop = asyncio.get_running_loop() is self.loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self.scheduler.wake(dag_id)
        elif not self.loop.is_closed():  # from a task's thread: the loop's event is set on the loop
            self.loop.call_soon_threadsafe(self.scheduler.wake, dag_id)

    # -- RunTriggerer (rtstream.airflow.trigger_operators): TriggerDagRunOperator's runs, on the loop
    def trigger_run(self, dag_id: str, conf: dict[str, Any], logical_date: datetime, run_id: str) -> tuple[str, datetime]:
        dag = next((d for d in self.scheduler.dags if d.dag_id == dag_id), None)
        floor = (dag.default_args or {}).get("start_date") if dag is not None else None
        if isinstance(floor, datetime) and logical_date < (floor if floor.tzinfo else floor.replace(tzinfo=UTC)):
            raise AirflowException(f"The execution_date [{logical_date.isoformat()}] should be >= start_date "
                                   f"[{floor.isoformat()}] from DAG's default_args")  # trigger_dag's check
        try:
            stored = self.trigger(Trigger(dag_id, conf, logical_date, run_id))
        except TriggerRefused as exc:
            if exc.status == 404:
                raise DagNotFound(f"Dag id {dag_id} not found in this daemon") from None
            if exc.status == 409:
                at = logical_date.astimezone(UTC).isoformat()
                row = self.store.query("SELECT run_id, logical_date FROM dag_run WHERE dag_id = ? AND "
                                       "(run_id = ? OR logical_date = ?) LIMIT 1", (dag_id, run_id, at))
                raise DagRunAlreadyExists(f"A DAG Run already exists for DAG {dag_id} at {logical_date} with run id "
                                          f"{run_id}", row[0][0], datetime.fromisoformat(row[0][1])) from None
            raise AirflowException(str(exc)) from None
        return stored.run_id, stored.logical_date

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        got = self.store.run(dag_id, run_id)
        return got.state if got is not None else None

    def reset_run(self, dag_id: str, run_id: str) -> None:
        """Airflow's `dag.clear` of that run: every task instance cleared, the run running again."""
        dag = next(d for d in self.scheduler.dags if d.dag_id == dag_id)
        if self.scheduler.is_active(dag_id, run_id):
            raise AirflowException(f"reset_dag_run: run {run_id} of {dag_id} is still running; rtstream clears a "
                                   "run only once it has finished")
        clear_in_store(self.store, dag, run_id, to_clear(dag, None, True), datetime.now(UTC))
        self.scheduler.resume(dag_id, run_id)
