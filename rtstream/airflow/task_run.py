"""One task instance: its tries, as Airflow's TaskInstance runs them.

Each try renders a fresh copy of the task's templated fields, calls `execute(context)` (awaited
when it is a coroutine or the operator runs on the loop, else in the run's thread pool) under
`execution_timeout`, and keeps a non-None return value as the `return_value` XCom. A failure with
tries left waits `retry_delay` (doubling, with Airflow's jitter, under `retry_exponential_backoff`,
capped by `max_retry_delay`) in `up_for_retry`; `AirflowSkipException` skips, `AirflowFailException`
fails at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import hashlib
import inspect
import logging
import math
import traceback
from concurrent.futures import Executor
from datetime import timedelta
from typing import Any

import jinja2

from rtstream.airflow.airflow3 import is_airflow3, keeps_return_value
from rtstream.airflow.callbacks import call_task_callbacks
from rtstream.airflow.run_support import current_context, run_loop
from rtstream.airflow.skips import tasks_to_skip
from rtstream.airflow.states import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    AirflowTaskTimeout,
)
from rtstream.airflow.states import TaskInstanceState as S
from rtstream.airflow.templating import render_fields
from rtstream.airflow.xcom import RETURN_VALUE, TaskInstance

log = logging.getLogger("rtstream.airflow")


def retry_delay(task: Any, ti: TaskInstance) -> float:
    """Seconds to wait before the next try (Airflow's TaskInstance.next_retry_datetime)."""
    delay: timedelta = task.retry_delay
    if task.retry_exponential_backoff:
        min_backoff = max(1, math.ceil(delay.total_seconds() * (2 ** (ti.try_number - 1))))
        digest = hashlib.sha1(f"{ti.dag_id}#{ti.task_id}#{ti.logical_date}#{ti.try_number}".encode()).hexdigest()
        delay = timedelta(seconds=min_backoff + int(digest, 16) % min_backoff)
    cap = task.max_retry_delay or timedelta(days=1)
    return min(delay, cap).total_seconds()


async def _execute(work: Any, context: dict[str, Any], pool: Executor) -> Any:
    if hasattr(work, "async_execute"):
        return await work.async_execute(context)
    if inspect.iscoroutinefunction(work.execute):
        return await work.execute(context)
    return await asyncio.get_running_loop().run_in_executor(pool, contextvars.copy_context().run, work.execute,
                                                            context)


async def run_task_instance(task: Any, ti: TaskInstance, context: dict[str, Any], env: jinja2.Environment,
                            pool: Executor, valid_branch_ids: set[str]) -> None:
    """Run every try of `ti` until it succeeds, is skipped, or fails after its last try; sets ti.state."""
    run_loop.set(asyncio.get_running_loop())
    name = f"{ti.dag_id}.{ti.task_id}" + (f"[{ti.map_index}]" if ti.map_index >= 0 else "")
    while True:
        ti.try_number += 1
        ti.state, ti.branch, ti.short_circuit = S.RUNNING.value, None, None
        work = copy.copy(task)
        ti.task = context["task"] = work
        context.pop("exception", None)  # a try's own context: the last try's error is not this one's
        current_context.set(context)
        log.info("%s: try %d of %d", name, ti.try_number, ti.max_tries + 1)
        try:
            render_fields(work, context, env)
            context["templates_dict"] = getattr(work, "templates_dict", None)
            await call_task_callbacks("on_execute_callback", work, context, pool)
            timeout = task.execution_timeout.total_seconds() if task.execution_timeout else None
            try:
                result = await asyncio.wait_for(_execute(work, context, pool), timeout)
            except TimeoutError:
                raise AirflowTaskTimeout(f"Timeout after {timeout:g}s (execution_timeout)") from None
            except SystemExit as exc:  # Airflow: exit 0/None is success, any other code fails the try;
                if exc.code not in (0, None):  # never the end of the process that runs the task
                    raise AirflowException(f"Task failed due to SystemExit({exc.code})") from None
                result = None
            if ti.branch is not None and (bad := ti.branch - valid_branch_ids):
                raise AirflowException(f"'branch_task_ids' must contain only valid task_ids. "
                                       f"Invalid tasks found: {sorted(bad)}.")
            if result is not None and getattr(task, "do_xcom_push", True) and keeps_return_value(
                    context["dag"], ti, tasks_to_skip(context["dag"], ti)):
                ti.xcom_push(RETURN_VALUE, result)
            ti.state = S.SUCCESS.value
            log.info("%s: success", name)
            await call_task_callbacks("on_success_callback", work, context, pool)
            return
        except AirflowSkipException as exc:
            ti.state = S.SKIPPED.value
            log.info("%s: skipped: %s", name, exc)
            await call_task_callbacks("on_skipped_callback", work, context, pool)
            if not is_airflow3(context["dag"]):  # Airflow 2.10's _run_raw_task calls on_success_callback
                await call_task_callbacks("on_success_callback", work, context, pool)  # after a skip too
            return
        except Exception as exc:  # noqa: BLE001 - any error of the task's own code fails this try
            log.error("%s: try %d failed: %s\n%s", name, ti.try_number, exc, traceback.format_exc().rstrip())
            # AirflowFailException, and a sensor's timeout, fail without a retry, as in Airflow
            if isinstance(exc, (AirflowFailException, AirflowSensorTimeout)) or ti.try_number > ti.max_tries:  # max_tries: retries, or more after a clear
                ti.state = S.FAILED.value
                log.error("%s: failed", name)
                await call_task_callbacks("on_failure_callback", work, context, pool, exc)
                return
            ti.state = S.UP_FOR_RETRY.value
            await call_task_callbacks("on_retry_callback", work, context, pool, exc)
            wait = retry_delay(task, ti)
            log.info("%s: up_for_retry, next try in %.3gs", name, wait)
            await asyncio.sleep(wait)
