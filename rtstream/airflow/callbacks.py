"""Task and DAG callbacks, called as Airflow 2.10 calls them.

Task callbacks (`TaskInstance._run_raw_task`, `handle_failure`, `_run_finished_callback`):
`on_execute_callback` after the templated fields are rendered and before `execute`; then, after the
state is set, `on_success_callback`, `on_skipped_callback` (only for an `AirflowSkipException` of the
task itself; Airflow 2.10 then calls `on_success_callback` too, Airflow 3 does not), `on_retry_callback`
or `on_failure_callback` (both with `context["exception"]`). Each may be one callable or a list; each is called with the try's context, in the run's thread pool (user
code never blocks the loop), and one that raises is logged and changes nothing: not the state, not
the next callbacks of the list, and never the process.

DAG callbacks (`DAG.handle_callback`, from `DagRun.update_state`): `on_success_callback` /
`on_failure_callback` of the DAG, with the context of the run's last task instance and `reason`
("success", "task_failure", "all_tasks_deadlocked", or "timed_out" for `dagrun_timeout`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

log = logging.getLogger("rtstream.airflow")


def as_list(callbacks: Any) -> list[Callable[[dict[str, Any]], Any]]:
    """Airflow takes one callable or a list (a tuple too: it checks `Sequence`)."""
    if not callbacks:
        return []
    return list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]


def _name(callback: Any) -> str:
    return str(getattr(callback, "__name__", None) or type(callback).__name__)


def _call_all(kind: str, where: str, callbacks: list[Any], context: dict[str, Any]) -> None:
    for idx, callback in enumerate(callbacks):
        log.info("%s: executing %s callback at index %d: %s", where, kind, idx, _name(callback))
        try:
            callback(context)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a callback's error is the callback's only
            log.exception("%s: error in %s callback at index %d (%s): %s: %s", where, kind, idx, _name(callback),
                          type(exc).__name__, exc)


async def call_task_callbacks(kind: str, task: Any, context: dict[str, Any], pool: Executor | None,
                              exception: BaseException | str | None = None) -> None:
    """Call the task's `kind` callbacks (e.g. "on_success_callback") with `context`; never raises."""
    callbacks = as_list(getattr(task, kind, None))
    if not callbacks:
        return
    if exception is not None:  # a zombie's is the message Airflow's scheduler gives it, a str
        context["exception"] = exception
    where = f"{context['ti'].dag_id}.{context['ti'].task_id}"
    await _off_loop(pool, _call_all, kind, where, callbacks, context)


async def _off_loop(pool: Executor | None, fn: Callable[..., None], *args: Any) -> None:
    # in the pool with the caller's context variables: a try's log capture sees the callback's lines
    try:
        await asyncio.get_running_loop().run_in_executor(pool, contextvars.copy_context().run, fn, *args)
    except RuntimeError as exc:  # the pool is shut down (the run is ending): call it here instead
        log.debug("callback pool unavailable (%s): calling on the loop", exc)
        fn(*args)


def dag_callback_context(run: Any, reason: str) -> dict[str, Any] | None:
    """The context of the run's last task instance, with `reason` (Airflow's `DAG.handle_callback`)."""
    # Airflow: the last row `dagrun.get_task_instances()` returns, which is the order the run's task
    # instances were created in: the DAG's task order (definition order), map indexes in order
    tis = [ti for tid in run.dag.task_dict if tid in run.tis for ti in run.tis[tid]]
    if not tis:
        return None
    ti = tis[-1]
    task = run.dag.task_dict[ti.task_id]
    context = run._context(task, ti)
    context["reason"] = reason
    return context


def run_reason(run_state: str, deadlocked: bool) -> str:
    if run_state == "success":
        return "success"
    return "all_tasks_deadlocked" if deadlocked else "task_failure"


async def call_dag_callbacks(run: Any, success: bool, reason: str) -> None:
    """The DAG's on_success_callback / on_failure_callback for `run`; never raises."""
    kind = "on_success_callback" if success else "on_failure_callback"
    dag = run.dag
    callbacks = as_list(getattr(dag, kind, None) or dag.other.get(kind))
    if not callbacks:
        return
    try:
        context = dag_callback_context(run, reason)
    except Exception as exc:  # noqa: BLE001 - e.g. params that do not resolve: logged, the run's state stands
        log.error("%s %s: no context for the DAG's %s: %s", dag.dag_id, run.info.run_id, kind, exc)
        return
    if context is None:
        return
    await _off_loop(None, _call_all, f"DAG {kind}", f"{dag.dag_id} {run.info.run_id}", callbacks, context)


def note_sla(dag: Any) -> None:
    """One line per DAG at load when it sets an `sla` or `sla_miss_callback`: rtstream does not act on them."""
    tasks = sorted(t.task_id for t in dag.task_dict.values() if getattr(t, "sla", None))
    if tasks or dag.other.get("sla_miss_callback"):
        which = f" (tasks {', '.join(tasks)})" if tasks else " (sla_miss_callback)"
        log.warning("DAG %s: sla is not acted on%s: rtstream does not check SLAs nor call sla_miss_callback",
                    dag.dag_id, which)
