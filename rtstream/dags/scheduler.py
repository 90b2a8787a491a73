"""Every DAG of a DAG bag on its schedule, durably: Airflow's scheduler loop for one process.

Per DAG, one loop: first the runs a previous process left unfinished (in logical-date order), then,
for ever, the next run after the latest one kept (`rtstream.airflow.schedule.next_run`), created
once it is due (its data interval has ended) and while fewer than `max_active_runs` runs are active.
The next run is computed from the store and inserted with no await in between, so the same interval
is never created twice, and one is never skipped: a restart computes it from the same store.

A run that passes `dagrun_timeout` fails, its unfinished task instances skipped, as Airflow's
scheduler does. `stop()` (SIGTERM) starts no new run and no new task instance; the tries in flight
get `grace` seconds to finish, then are cancelled; a run left unfinished stays `running` in the store
and resumes on the next start. Nothing a DAG's code does ends the scheduler.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from rtstream.airflow.asset_schedule import next_time_run
from rtstream.airflow.callbacks import call_dag_callbacks
from rtstream.airflow.context import make_dag_run
from rtstream.airflow.dag_model import DAG
from rtstream.airflow.states import DagRunState
from rtstream.airflow.states import TaskInstanceState as S
from rtstream.dags.asset_reads import AssetReads
from rtstream.dags.asset_triggers import AssetTriggers
from rtstream.dags.durable_run import DurableDagRun
from rtstream.dags.store import RunStore, StoredRun
from rtstream.dags.tries import TryRecorder

log = logging.getLogger("rtstream.dags")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def run_id_of(run_type: str, logical_date: datetime) -> str:
    """Airflow's `DagRun.generate_run_id`: `scheduled__2024-01-01T00:00:00+00:00`."""
    return f"{run_type}__{logical_date.isoformat()}"


class DagScheduler:
    def __init__(self, dags: list[DAG], store: RunStore, grace: float, tries: TryRecorder | None = None):
        self.dags, self.store, self.grace, self.tries = dags, store, grace, tries
        self.stopping = False
        self._wake: dict[str, asyncio.Event] = {}
        self._active: dict[str, dict[str, tuple[DurableDagRun | None, asyncio.Task[None]]]] = {}
        # dag_run.conf of a kept run (rtstream.dags.window_runs keeps a window's); empty by default
        self.run_conf: Callable[[str, str], dict[str, Any]] = lambda dag_id, run_id: {}
        # run types not resumed at start: another part starts them (a window's run, when its window is written)
        self.started_by_others: set[str] = set()
        self.assets = AssetTriggers(dags, store)  # dataset-triggered runs, made in this loop as they are due
        self.reads = AssetReads(store)  # a run's triggering events and its tasks' inlet_events
        # told of each failed run (dag, run, reason, failed tasks): the config's alert webhook
        self.on_failed: Callable[[DAG, StoredRun, str, list[str]], Awaitable[None]] | None = None

    def _asset_writer(self, run: DurableDagRun, ti: Any) -> Callable[[Any], None] | None:
        return self.assets.writer(run.dag.dag_id, run.stored, ti, _utcnow())

    def _wake_consumers(self, loop: asyncio.AbstractEventLoop, dag_ids: list[str]) -> None:
        for dag_id in dag_ids:  # from a task's thread too: the events are the loop's
            if dag_id in self._wake:
                loop.call_soon_threadsafe(self._wake[dag_id].set)

    async def run(self) -> None:
        """Schedule until `stop()`; then finish within the grace."""
        loop = asyncio.get_running_loop()
        self.assets.on_queued = lambda dag_ids: self._wake_consumers(loop, dag_ids)
        loops = [asyncio.create_task(self._guarded(dag), name=f"dag {dag.dag_id}") for dag in self.dags]
        try:
            await asyncio.gather(*loops)
        finally:
            for t in loops:
                t.cancel()
            await self._drain()

    def is_active(self, dag_id: str, run_id: str) -> bool:
        return run_id in self._active.get(dag_id, {})

    def resume(self, dag_id: str, run_id: str) -> bool:
        """Start a run the store has made `running` again (a clear), unless it runs already or the
        daemon stops (then the next start resumes it from the store). Called on the loop, with no await
        between the store's change and this, so a run is never started twice."""
        return self.start_kept(dag_id, run_id, "running %s again (cleared)") is not None

    def start_kept(self, dag_id: str, run_id: str, said: str) -> asyncio.Task[None] | None:
        """Start a `running` run of the store that is not active; None when it cannot start now."""
        dag = next((d for d in self.dags if d.dag_id == dag_id), None)
        stored = self.store.run(dag_id, run_id)
        if self.stopping or dag is None or stored is None or dag_id not in self._active or \
                self.is_active(dag_id, run_id) or stored.state != "running":
            return None
        log.info("%s: " + said, dag_id, run_id)
        return self._start(dag, stored)

    def task_of(self, dag_id: str, run_id: str) -> asyncio.Task[None] | None:
        """The task running that run, if one is."""
        entry = self._active.get(dag_id, {}).get(run_id)
        return entry[1] if entry is not None else None

    def wake(self, dag_id: str) -> None:
        """Make that DAG's loop look at the store again (a run was triggered); on the loop only."""
        if dag_id in self._wake:
            self._wake[dag_id].set()

    def loop_started(self, dag_id: str) -> bool:
        """Whether that DAG's loop has resumed the runs a previous process left (so none starts twice)."""
        return dag_id in self._active

    def stop(self) -> None:
        self.stopping = True
        for runs in self._active.values():
            for run, _ in runs.values():
                if run is not None:
                    run.stopping = True
        for wake in self._wake.values():
            wake.set()

    async def _drain(self) -> None:
        tasks = [t for runs in self._active.values() for _, t in runs.values()]
        if not tasks:
            return
        log.info("waiting up to %.0fs for %d DAG run(s) to finish the task instances they started",
                 self.grace, len(tasks))
        _, pending = await asyncio.wait(tasks, timeout=self.grace)
        for t in pending:
            t.cancel()
        if pending:
            log.warning("%d DAG run(s) had tries still running after the grace: cancelled; those tries count as "
                        "failed on the next start (retried when they have tries left)", len(pending))
            await asyncio.wait(pending)

    async def _guarded(self, dag: DAG) -> None:
        try:
            await self._dag_loop(dag)
        except Exception:  # noqa: BLE001 - one DAG's schedule failing never stops the others
            log.exception("%s: its schedule stopped", dag.dag_id)

    async def _dag_loop(self, dag: DAG) -> None:
        wake = self._wake.setdefault(dag.dag_id, asyncio.Event())
        active = self._active.setdefault(dag.dag_id, {})
        limit = max(1, int(getattr(dag, "max_active_runs", None) or dag.other.get("max_active_runs") or 16))
        for stored in self.store.unfinished_runs(dag.dag_id):
            if stored.run_type in self.started_by_others:
                continue
            log.info("%s: resuming run %s", dag.dag_id, stored.run_id)
            self._start(dag, stored)
        said_none = False
        while not self.stopping:
            wake.clear()
            if len(active) >= limit:
                await wake.wait()
                continue
            now = _utcnow()
            # a triggered run (rtstream.dags.triggering) waiting for a slot: made running and started at once
            queued = self.store.take_queued(dag.dag_id, now)
            if queued is not None:
                log.info("%s: starting triggered run %s", dag.dag_id, queued.run_id)
                self._start(dag, queued)
                continue
            # a consumer whose queued assets satisfy its schedule: its run, created with its queue emptied
            triggered = self.assets.take(dag.dag_id, now)
            if triggered is not None:
                self._start(dag, triggered)
                continue
            # decided and created with no await in between: the store is the only source of the last run
            info = next_time_run(dag, self.store.last_scheduled_interval(dag.dag_id), now)
            if info is None:
                if not said_none and dag.dag_id not in self.assets.conditions:
                    log.info("%s: no further scheduled run (schedule %s)", dag.dag_id, dag.schedule)
                    said_none = True
                await wake.wait()
                continue
            if info.run_after > now:
                try:
                    await asyncio.wait_for(wake.wait(), (info.run_after - now).total_seconds())
                except TimeoutError:
                    pass
                continue
            run_id = run_id_of("scheduled", info.logical_date)
            stored = self.store.create_run(dag.dag_id, run_id, info.logical_date,
                                           (info.interval_start, info.interval_end), "scheduled", now)
            if stored.run_id != run_id:  # a triggered run has that logical date: Airflow passes the interval over
                log.info("%s: no scheduled run at %s: run %s has that logical date", dag.dag_id,
                         info.logical_date.isoformat(), stored.run_id)
                self.store.pass_over(dag.dag_id, info.logical_date, (info.interval_start, info.interval_end))
                continue
            self._start(dag, stored)

    def _start(self, dag: DAG, stored: StoredRun) -> asyncio.Task[None]:
        active = self._active[dag.dag_id]
        task = asyncio.create_task(self._run(dag, stored), name=f"{dag.dag_id} {stored.run_id}")
        active[stored.run_id] = (None, task)
        return task

    async def _run(self, dag: DAG, stored: StoredRun) -> None:
        active = self._active[dag.dag_id]
        try:
            await self._run_one(dag, stored, active)
        except Exception:  # noqa: BLE001 - the store failing: log it; the run stays running and resumes later
            log.exception("%s %s: the run could not be kept in the store", dag.dag_id, stored.run_id)
        finally:
            active.pop(stored.run_id, None)
            self._wake[dag.dag_id].set()

    async def _run_one(self, dag: DAG, stored: StoredRun, active: dict[str, Any]) -> None:
        info = dataclasses.replace(make_dag_run(dag.dag_id, stored.logical_date,
                                                (stored.interval_start, stored.interval_end)),
                                   run_id=stored.run_id, run_type=stored.run_type,
                                   conf=self.run_conf(dag.dag_id, stored.run_id),
                                   external_trigger=stored.run_type == "manual",
                                   asset_events=self.reads.consumed(dag.dag_id, stored.run_id),
                                   read_events=self.reads.reader)
        try:
            run = DurableDagRun(dag, stored, self.store, info, self.tries)
        except Exception as exc:  # noqa: BLE001 - e.g. a mapped task that cannot expand again
            log.error("%s %s: cannot resume the run: %s", dag.dag_id, stored.run_id, exc)
            self.store.finish_run(dag.dag_id, stored.run_id, DagRunState.FAILED.value, _utcnow())
            return
        run.stopping = self.stopping
        run.on_success = self._asset_writer
        active[stored.run_id] = (run, active[stored.run_id][1])
        timeout: timedelta | None = getattr(dag, "dagrun_timeout", None) or dag.other.get("dagrun_timeout")
        left = (stored.start_date + timeout - _utcnow()).total_seconds() if timeout else None
        log.info("%s %s: running (data interval %s to %s)", dag.dag_id, stored.run_id,
                 stored.interval_start.isoformat(), stored.interval_end.isoformat())
        try:
            result = await asyncio.wait_for(run.run(), max(left, 0.0) if left is not None else None)
        except TimeoutError:
            for ti in run.unfinished():
                ti.state = S.SKIPPED.value
            log.error("%s %s: failed: ran past dagrun_timeout (%s); unfinished task instances skipped",
                      dag.dag_id, stored.run_id, timeout)
            self.store.finish_run(dag.dag_id, stored.run_id, DagRunState.FAILED.value, _utcnow())
            run.info.state = DagRunState.FAILED.value  # the DAG callback's dag_run, as Airflow's DAG processor reads it
            await call_dag_callbacks(run, False, "timed_out")  # Airflow's scheduler: reason "timed_out"
            if self.on_failed is not None:
                await self.on_failed(dag, stored, "timed_out", [])
            return
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a task's code must not end the daemon
            log.error("%s %s: failed: %s: %s", dag.dag_id, stored.run_id, type(exc).__name__, exc)
            self.store.finish_run(dag.dag_id, stored.run_id, DagRunState.FAILED.value, _utcnow())
            return
        if run.stopping and run.unfinished():
            log.info("%s %s: stopped with %d task instance(s) not run; they run on the next start",
                     dag.dag_id, stored.run_id, len(run.unfinished()))
            return
        self.store.finish_run(dag.dag_id, stored.run_id, result.run_state, _utcnow())
        # a deployment's DAG processor calls the DAG's callbacks with the run read back from the
        # metadata DB: its dag_run.state is the final one (Airflow's `dags test` still says running)
        run.info.state = result.run_state
        failed = f" (failed tasks: {', '.join(result.failed_tasks)})" if result.failed_tasks else ""
        log.info("%s %s: %s%s", dag.dag_id, stored.run_id, result.run_state, failed)
        await run.call_back(result)
        if result.run_state == DagRunState.FAILED and self.on_failed is not None:
            deadlocked = any(ti.state is None for ti in result.task_instances)
            await self.on_failed(dag, stored, "all_tasks_deadlocked" if deadlocked else "task_failure",
                                 result.failed_tasks)
