"""One DAG run, as the loop of Airflow's `dag.test()` drives it: task instances in dependency order,
each started as soon as its trigger rule allows (independent ones at once, up to the DAG's
max_active_tasks), mapped tasks expanded when their upstream is done, branch and short-circuit skips
applied when the deciding task succeeds, and the run's state from its leaves (failed when a leaf is
failed or upstream_failed, success when every leaf succeeded or was skipped).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rtstream.airflow.callbacks import call_dag_callbacks, run_reason
from rtstream.airflow.context import DagRunInfo, build_context, make_dag_run
from rtstream.airflow.dag_model import DAG
from rtstream.airflow.mapped_group import group_gate, upstream_states
from rtstream.airflow.setup_teardown import effective_leaves, setup_constraint
from rtstream.airflow.skips import descendants as descendants  # re-exported: dags/ imports it from here
from rtstream.airflow.skips import groups_of, tasks_to_skip
from rtstream.airflow.state_store import PROCESS_BACKEND, StateBackend, store_context
from rtstream.airflow.states import DagRunState
from rtstream.airflow.states import TaskInstanceState as S
from rtstream.airflow.task_dates import gets_instance
from rtstream.airflow.task_run import log, run_task_instance
from rtstream.airflow.templating import environment
from rtstream.airflow.timetable import manual_data_interval
from rtstream.airflow.trigger_rules import decide
from rtstream.airflow.xcom import RunXComs, TaskInstance

PAST_POLL = 0.5  # seconds between looks at the previous run while a task instance waits for it


@dataclass
class RunResult:
    dag_id: str
    run_state: str
    task_instances: list[TaskInstance]
    xcoms: RunXComs

    @property
    def failed_tasks(self) -> list[str]:
        return [ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else "") for ti in self.task_instances
                if ti.state == S.FAILED]


def topological_order(dag: DAG) -> list[str]:
    """Task ids upstream-first, in definition order among equals; a cycle is an error, as in Airflow."""
    indegree = {t: len(dag.task_dict[t].upstream_task_ids) for t in dag.task_dict}
    ready = [t for t in dag.task_dict if indegree[t] == 0]
    order: list[str] = []
    while ready:
        tid = ready.pop(0)
        order.append(tid)
        for down in sorted(dag.task_dict[tid].downstream_task_ids, key=list(dag.task_dict).index):
            indegree[down] -= 1
            if indegree[down] == 0:
                ready.append(down)
    if len(order) != len(dag.task_dict):
        stuck = sorted(set(dag.task_dict) - set(order))
        raise ValueError(f"Cycle detected in DAG {dag.dag_id}: tasks {', '.join(stuck)} depend on each other")
    return order


class DagRun:
    def __init__(self, dag: DAG, logical_date: datetime, info: DagRunInfo | None = None):
        self.dag, self.order = dag, topological_order(dag)
        # a scheduled run brings its own run_id and data interval; a test run is a manual one
        self.info = info or make_dag_run(dag.dag_id, logical_date, manual_data_interval(dag, logical_date))
        self.stopping = False  # set by a daemon that stops: no new task instance starts
        self.state_backend: StateBackend = PROCESS_BACKEND  # Airflow 3's state stores (a daemon's are durable)
        self.xcoms = RunXComs()
        # a task whose start_date is after the logical date (or end_date before it) gets no instance
        when, run_type = self.info.logical_date, getattr(self.info, "run_type", None)
        self.tis: dict[str, list[TaskInstance]] = {
            tid: [self._ti(dag.task_dict[tid], -1)] if gets_instance(dag, dag.task_dict[tid], when, run_type) else []
            for tid in self.order}
        self.groups = groups_of(dag.task_group)
        self.valid_branch_ids = set(dag.task_dict) | set(self.groups)
        self.env = environment(dag)
        # depends_on_past: why a task instance may not start yet (rtstream.airflow.past_deps), given by a
        # daemon, which keeps the previous runs; `dags test` has none, so its run is a first run
        self.past: Callable[[Any, TaskInstance], str | None] | None = None
        self.held: dict[tuple[str, int], str] = {}

    def _ti(self, task: Any, map_index: int) -> TaskInstance:
        ti = TaskInstance(task, self.info.run_id, map_index, self.xcoms, self.info.logical_date)
        ti.dag_run = self.info
        return ti

    def _context(self, task: Any, ti: TaskInstance) -> dict[str, Any]:
        return {**build_context(self.dag, task, ti, self.info),
                **store_context(self.dag, task, ti, self.state_backend)}

    async def run(self) -> RunResult:
        limit = max(1, int(self.dag.max_active_tasks))
        running: dict[asyncio.Task[None], TaskInstance] = {}
        pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix=f"dag-{self.dag.dag_id}")
        try:
            while True:
                if not self.stopping:
                    self._settle(running, pool, limit)
                if not running:
                    if not self.held or self.stopping:
                        break
                    await asyncio.sleep(PAST_POLL)  # held by the previous run: look at it again
                    continue
                done, _ = await asyncio.wait(running, timeout=PAST_POLL if self.held else None,
                                             return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    ti = running.pop(t)
                    t.result()  # run_task_instance keeps every task error in ti.state; anything else is ours
                    if ti.state == S.SUCCESS:
                        self._apply_skips(ti)
        except asyncio.CancelledError:
            # cancelled (a daemon's grace or dagrun_timeout ran out): the tries in flight end here; a
            # sync callable cannot be stopped in its thread, so do not wait for the pool
            for t in running:
                t.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return RunResult(self.dag.dag_id, self._run_state(), [ti for tid in self.order for ti in self.tis[tid]],
                         self.xcoms)

    def _settle(self, running: dict[asyncio.Task[None], TaskInstance], pool: ThreadPoolExecutor, limit: int) -> None:
        """Decide every task instance that can be decided now; start those that may run."""
        # A task instance is done for its downstream only once its try has returned, callbacks
        # included: Airflow commits the state after on_success_callback, and a branch's skips are
        # applied when its try returns (else a slow callback lets the branch not taken start). One
        # still running holds nothing here: its trigger rule already sees it unfinished.
        in_flight = {id(ti) for ti in running.values() if ti.state in (S.SUCCESS, S.FAILED, S.SKIPPED)}
        progressed = True
        while progressed:
            progressed = False
            for tid in self.order:
                task = self.dag.task_dict[tid]
                for ti in list(self.tis[tid]):
                    if ti.state is not None or len(running) >= limit:
                        continue
                    if any(id(u) in in_flight for up in task.upstream_task_ids for u in self.tis[up]):
                        continue
                    upstream = upstream_states(self.dag, task, ti, self.tis)
                    setups = [u.state for up in task.upstream_task_ids for u in self.tis[up]
                              if getattr(self.dag.task_dict[up], "is_setup", False)]
                    new_state, runnable = decide(task.trigger_rule, upstream, setups)
                    if new_state is None and runnable and (constraint := setup_constraint(
                            self.dag, task, {t: [x.state for x in tis] for t, tis in self.tis.items()})):
                        new_state, runnable = constraint, False
                    if new_state is not None:
                        ti.state, progressed = new_state, True
                    elif runnable and task.is_mapped and ti.map_index < 0:
                        if (gate := group_gate(task, self.tis)) == "wait":
                            continue
                        if gate is not None:
                            ti.state = gate
                        else:
                            self._expand(task, ti)
                        progressed = True
                    elif runnable and self._held(task, ti):
                        continue
                    elif runnable:
                        ti.state = S.SCHEDULED.value
                        real = ti.task if task.is_mapped else task
                        coro = run_task_instance(real, ti, self._context(real, ti), self.env, pool,
                                                 self.valid_branch_ids)
                        running[asyncio.get_running_loop().create_task(coro)] = ti
                        progressed = True

    def _held(self, task: Any, ti: TaskInstance) -> bool:
        if self.past is None:
            return False
        key = (ti.task_id, ti.map_index)
        why = self.past(task, ti)
        if why is None:
            self.held.pop(key, None)
            return False
        if self.held.get(key) != why:
            log.info("%s.%s (%s): waits: %s", self.dag.dag_id, ti.task_id, self.info.run_id, why)
        self.held[key] = why
        return True

    async def call_back(self, result: RunResult, reason: str | None = None) -> None:
        """The DAG's on_success_callback / on_failure_callback for this finished run (never raises)."""
        deadlocked = any(ti.state is None for ti in result.task_instances)
        await call_dag_callbacks(self, result.run_state == DagRunState.SUCCESS,
                                 reason or run_reason(result.run_state, deadlocked))

    def _expand(self, task: Any, ti: TaskInstance) -> None:
        try:
            ops = task.expand_into(self._context(task, ti))
        except Exception as exc:  # noqa: BLE001 - an unmappable value fails the mapped task, as in Airflow
            log.error("%s.%s: cannot expand: %s", self.dag.dag_id, task.task_id, exc)
            ti.state, ti.try_number = S.FAILED.value, 1
            return
        if not ops:
            ti.state = S.SKIPPED.value  # a zero-length expansion: Airflow skips the task
            self.xcoms.mapped_counts[task.task_id] = 0
            return
        self.xcoms.mapped_counts[task.task_id] = len(ops)
        new = []
        for i, op in enumerate(ops):
            one = self._ti(op, i)
            one.task = op
            new.append(one)
        self.tis[task.task_id] = new

    def _apply_skips(self, ti: TaskInstance) -> None:
        for tid in tasks_to_skip(self.dag, ti, self.groups):
            for other in self.tis[tid]:
                if other.state is None:
                    other.state = S.SKIPPED.value

    def _run_state(self) -> str:
        leaves = [ti for t in effective_leaves(self.dag) for ti in self.tis[t.task_id]]
        states = [ti.state for tis in self.tis.values() for ti in tis]
        if any(s is None for s in states):
            return DagRunState.FAILED.value  # deadlocked: Airflow fails the run
        if any(ti.state in (S.FAILED, S.UPSTREAM_FAILED) for ti in leaves):
            return DagRunState.FAILED.value
        return DagRunState.SUCCESS.value
