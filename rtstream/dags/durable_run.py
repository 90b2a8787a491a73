"""A DAG run whose task instances and XComs are kept in the run store as they change, and which a
restart resumes from its unfinished task instances.

Each state change of a task instance is written before the run goes on: `running` with its try
number before the try's code is called (and the instance's XComs of an earlier try cleared, as
Airflow does when a try starts), then the try's XComs, then its final state with the branch or
short-circuit decision it made, so the skips it asks for are applied again on a restart.

On a restart, a task instance found `running` was interrupted: Airflow's zombie handling
(`TaskInstance.handle_failure`) counts that try as failed, so it is retried when it has tries left
and fails otherwise. One found `up_for_retry` runs its next try. The rest of the run goes on from there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rtstream.airflow.callbacks import call_task_callbacks
from rtstream.airflow.dag_model import DAG
from rtstream.airflow.dag_run import DagRun, RunResult
from rtstream.airflow.states import FINISHED
from rtstream.airflow.states import TaskInstanceState as S
from rtstream.airflow.xcom import RunXComs, TaskInstance
from rtstream.dags.past_runs import PastRuns
from rtstream.dags.state_tables import state_backend
from rtstream.dags.store import RunStore, StoredRun
from rtstream.dags.tries import TryRecorder

log = logging.getLogger("rtstream.dags")


class StoredXComs(RunXComs):
    """The run's XComs, each push also written to the store."""

    def __init__(self, store: RunStore, dag_id: str, run_id: str):
        super().__init__()
        self.store, self.dag_id, self.run_id = store, dag_id, run_id

    def push(self, task_id: str, map_index: int, key: str, value: Any) -> None:
        self.store.push_xcom(self.dag_id, self.run_id, task_id, map_index, key, value)
        super().push(task_id, map_index, key, value)

    def restore(self, task_id: str, map_index: int, key: str, value: Any) -> None:
        super().push(task_id, map_index, key, value)


class StoredTaskInstance(TaskInstance):
    """A `ti` whose every state change is written (once `save` is attached, after the restore)."""

    save: Callable[[StoredTaskInstance], None] | None = None

    @property  # type: ignore[override]
    def state(self) -> str | None:
        return self._state

    @state.setter
    def state(self, value: str | None) -> None:
        self._state = value
        if self.save is not None:
            self.save(self)


class DurableDagRun(DagRun):
    # what a task instance's success writes beside its state (its outlets' asset events), if anything
    on_success: Callable[[DurableDagRun, TaskInstance], Callable[[Any], None] | None] | None = None

    def __init__(self, dag: DAG, stored: StoredRun, store: RunStore, info: Any, tries: TryRecorder | None = None):
        self.store, self.stored, self.tries = store, stored, tries
        self.xcoms_store = StoredXComs(store, dag.dag_id, stored.run_id)
        super().__init__(dag, stored.logical_date, info)
        self.state_backend = state_backend(store.path)  # Airflow 3's task/asset state, kept across restarts
        self.xcoms = self.xcoms_store
        for tis in self.tis.values():
            for ti in tis:
                ti.xcoms = self.xcoms
        self._restore()
        if any(getattr(t, "depends_on_past", False) for t in dag.task_dict.values()):
            self.past = PastRuns(store, dag, stored.run_id, stored.logical_date).held

    def _ti(self, task: Any, map_index: int) -> TaskInstance:
        ti = StoredTaskInstance(task, self.info.run_id, map_index, getattr(self, "xcoms_store", self.xcoms),
                                self.info.logical_date)
        ti.dag_run = self.info
        if getattr(self, "restored", False):
            ti.save = self._save
        return ti

    def _save(self, ti: StoredTaskInstance) -> None:
        then = self.on_success(self, ti) if ti.state == S.SUCCESS and self.on_success is not None else None
        self.store.save_ti(self.dag.dag_id, self.stored.run_id, ti.task_id, ti.map_index, ti.state, ti.try_number,
                           ti.branch if ti.state == S.SUCCESS else None,
                           ti.short_circuit if ti.state == S.SUCCESS else None, datetime.now(UTC), then)
        if self.tries is not None:
            self.tries.saw(self.dag.dag_id, self.stored.run_id, ti, datetime.now(UTC))

    def _expand(self, task: Any, ti: TaskInstance) -> None:
        super()._expand(task, ti)
        if task.task_id in self.xcoms.mapped_counts and self.restored:
            self.store.save_mapped(self.dag.dag_id, self.stored.run_id, task.task_id,
                                   self.xcoms.mapped_counts[task.task_id])

    def _restore(self) -> None:
        """Task instances and XComs as the store keeps them; zombies failed or made ready for their next try."""
        self.restored = False
        dag_id, run_id = self.dag.dag_id, self.stored.run_id
        for task_id, map_index, key, value in self.store.xcoms(dag_id, run_id):
            self.xcoms_store.restore(task_id, map_index, key, value)
        rows = {(r.task_id, r.map_index): r for r in self.store.task_instances(dag_id, run_id)}
        counts = self.store.mapped(dag_id, run_id)
        max_tries = self.tries.max_tries(dag_id, run_id) if self.tries is not None else {}
        zombies: list[StoredTaskInstance] = []
        for task_id in self.order:
            task = self.dag.task_dict[task_id]
            if counts.get(task_id, 0) > 0:
                super()._expand(task, self.tis[task_id][0])
            elif task_id in counts:
                self.xcoms.mapped_counts[task_id] = 0
            for ti in self.tis[task_id]:
                assert isinstance(ti, StoredTaskInstance)
                row = rows.get((task_id, ti.map_index))
                if row is None:
                    continue
                ti.try_number, ti.branch, ti.short_circuit = row.try_number, row.branch, row.short_circuit
                ti.max_tries = max_tries.get((task_id, ti.map_index), ti.max_tries)  # a clear gives retries again
                if row.state in FINISHED:
                    ti.state = row.state
                elif row.state in (S.RUNNING, S.UP_FOR_RETRY):
                    zombies.append(ti)
                    ti.state = row.state
        self.restored = True
        for tis in self.tis.values():
            for ti in tis:
                assert isinstance(ti, StoredTaskInstance)
                ti.save = self._save
        self.interrupted: list[tuple[StoredTaskInstance, str]] = []  # their callbacks, called as the run starts
        for ti in zombies:
            if ti.state == S.RUNNING and ti.try_number > ti.max_tries:
                log.error("%s.%s (%s): try %d was interrupted (the daemon stopped during it) and was the last: "
                          "failed", dag_id, ti.task_id, run_id, ti.try_number)
                ti.state = S.FAILED.value
                self.interrupted.append((ti, "on_failure_callback"))
            else:
                if ti.state == S.RUNNING:  # Airflow's zombie handling: up_for_retry, its retry callback
                    self.interrupted.append((ti, "on_retry_callback"))
                log.warning("%s.%s (%s): try %d was interrupted or waiting for its retry: the next try runs now",
                            dag_id, ti.task_id, run_id, ti.try_number)
                ti.state = None
        for tis in self.tis.values():
            for ti in tis:
                if ti.state == S.SUCCESS:
                    self._apply_skips(ti)

    async def run(self) -> RunResult:
        """The callbacks of the tries a previous process left interrupted (Airflow calls them when it
        finds the zombie, with its message as `exception`), then the run."""
        interrupted, self.interrupted = self.interrupted, []
        for ti, kind in interrupted:
            task = ti.task if ti.map_index >= 0 else self.dag.task_dict[ti.task_id]
            why = (f"{self.dag.dag_id}.{ti.task_id} ({self.stored.run_id}): try {ti.try_number} was interrupted "
                   f"(the daemon stopped during it): detected as a zombie")
            try:
                context = self._context(task, ti)
            except Exception as exc:  # noqa: BLE001 - e.g. params that no longer resolve: the callback is skipped
                log.error("%s: no context for its %s: %s", why, kind, exc)
                continue
            await call_task_callbacks(kind, task, context, None, why)
        return await super().run()

    def unfinished(self) -> list[TaskInstance]:
        return [ti for tis in self.tis.values() for ti in tis if ti.state not in FINISHED]
