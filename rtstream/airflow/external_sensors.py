"""`ExternalTaskSensor` and `ExternalTaskMarker` as Airflow 2.10 has them (airflow/sensors/external_task.py,
airflow/utils/sensor_helper.py, BaseSensorOperator.execute), over the runs of the DAGs beside this one.

The sensor pokes every `poke_interval` seconds (`poll_interval` is the deferrable one's): the external
task instances (`external_task_id(s)`), task group or DAG run at the logical dates `execution_delta` /
`execution_date_fn` give (default: this run's) counted in `failed_states` (any: the task fails, or
skips with `soft_fail`), `skipped_states` (any: skipped), `allowed_states` (all: success). Past
`timeout` it fails with AirflowSensorTimeout (skipped with soft_fail). Both modes are a coroutine
sleeping between pokes: no worker thread is held, and `mode="reschedule"` keeps one try as Airflow's
reschedule does (its timeout counted from the try's start).

Where the states come from is the caller's (`use_states`): the daemon's run store
(rtstream.dags.external_states); `rtstream dags test` has no runs of other DAGs, as a fresh metadata DB.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any, Protocol

from rtstream.airflow.operator_base import BaseOperator
from rtstream.airflow.operators import EmptyOperator
from rtstream.airflow.states import AirflowException, AirflowSensorTimeout, AirflowSkipException

TASK_STATES = {"success", "running", "failed", "upstream_failed", "skipped", "up_for_retry", "up_for_reschedule",
               "queued", "scheduled", "deferred", "removed", "restarting", "none"}
DAG_STATES = {"success", "running", "queued", "failed"}


class ExternalStates(Protocol):
    def count(self, dag_id: str, logical_dates: list[datetime], states: list[str], task_ids: list[str] | None,
              group_id: str | None) -> float:
        """Airflow's `_get_count`: task instances of `task_ids` (or of the group) in `states`, divided by
        their number; without either, the DAG runs in `states`."""
        ...

    def missing(self, dag_id: str, task_ids: list[str] | None, group_id: str | None) -> str | None:
        """`check_existence`: what of the external DAG, tasks or group does not exist (Airflow's message)."""
        ...


class NoRuns:
    """No run of any other DAG (`dags test`'s, as a fresh metadata DB)."""

    def count(self, dag_id: str, logical_dates: list[datetime], states: list[str], task_ids: list[str] | None,
              group_id: str | None) -> float:
        return 0

    def missing(self, dag_id: str, task_ids: list[str] | None, group_id: str | None) -> str | None:
        return f"The external DAG {dag_id} does not exist."


_states: ExternalStates = NoRuns()


def use_states(states: ExternalStates | None) -> None:
    global _states
    _states = states or NoRuns()


class ExternalTaskSensor(BaseOperator):
    template_fields = ("external_dag_id", "external_task_id", "external_task_ids", "external_task_group_id")
    ui_color = "#4db7db"

    def __init__(self, *, external_dag_id: str, external_task_id: str | None = None,
                 external_task_ids: Collection[str] | None = None, external_task_group_id: str | None = None,
                 allowed_states: Collection[str] | None = None, skipped_states: Collection[str] | None = None,
                 failed_states: Collection[str] | None = None, execution_delta: timedelta | None = None,
                 execution_date_fn: Callable[..., Any] | None = None, check_existence: bool = False,
                 poll_interval: float = 2.0, deferrable: bool = False, poke_interval: float = 60,
                 timeout: float = 60 * 60 * 24 * 7, soft_fail: bool = False, mode: str = "poke",
                 exponential_backoff: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.allowed_states = [str(getattr(s, "value", s)) for s in allowed_states] if allowed_states else ["success"]
        self.skipped_states = [str(getattr(s, "value", s)) for s in skipped_states or []]
        self.failed_states = [str(getattr(s, "value", s)) for s in failed_states or []]
        total = set(self.allowed_states + self.skipped_states + self.failed_states)
        if len(total) != len(self.allowed_states) + len(self.skipped_states) + len(self.failed_states):
            raise AirflowException("Duplicate values provided across allowed_states, skipped_states and failed_states.")
        if external_task_id is not None and external_task_ids:
            raise ValueError("Only one of `external_task_id` or `external_task_ids` may be provided to "
                             "ExternalTaskSensor; use external_task_id or external_task_ids or external_task_group_id.")
        ids = [external_task_id] if external_task_id is not None else (list(external_task_ids or []) or None)
        if external_task_group_id is not None and ids is not None:
            raise ValueError("Only one of `external_task_group_id` or `external_task_ids` may be provided to "
                             "ExternalTaskSensor; use external_task_id or external_task_ids or external_task_group_id.")
        valid = TASK_STATES if ids or external_task_group_id else DAG_STATES
        if not total <= valid:
            raise ValueError(f"Valid values for `allowed_states`, `skipped_states` and `failed_states` here: "
                             f"{sorted(valid)}")
        if execution_delta is not None and execution_date_fn is not None:
            raise ValueError("Only one of `execution_delta` or `execution_date_fn` may be provided to "
                             "ExternalTaskSensor; not both.")
        if mode not in ("poke", "reschedule"):
            raise AirflowException(f"The mode must be one of ('poke', 'reschedule'),'{self.dag_id}.{self.task_id}'")
        if exponential_backoff:  # Airflow's jittered backoff is not reproduced: refused rather than different
            raise AirflowException(f"{self.task_id}: exponential_backoff is not supported by rtstream's sensors")
        self.external_dag_id, self.external_task_id, self.external_task_ids = external_dag_id, external_task_id, ids
        self.external_task_group_id, self.check_existence = external_task_group_id, check_existence
        self.execution_delta, self.execution_date_fn = execution_delta, execution_date_fn
        self.poll_interval, self.deferrable = poll_interval, deferrable
        self.poke_interval = float(getattr(poke_interval, "total_seconds", lambda: poke_interval)())
        self.timeout = float(getattr(timeout, "total_seconds", lambda: timeout)())
        self.soft_fail, self.mode = soft_fail, mode
        self._checked = False

    @property
    def reschedule(self) -> bool:
        return self.mode == "reschedule"

    def _dates(self, context: dict[str, Any]) -> list[datetime]:
        if self.execution_delta:
            at: Any = context["logical_date"] - self.execution_delta
        elif self.execution_date_fn:
            fn = self.execution_date_fn
            params = inspect.signature(fn).parameters
            kwargs = {k: v for k, v in context.items() if k not in ("execution_date", "logical_date")}
            kwargs["context"] = context
            if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
                kwargs = {k: v for k, v in kwargs.items() if k in params}
            at = fn(context["logical_date"], **kwargs)
        else:
            at = context["logical_date"]
        return list(at) if isinstance(at, list) else [at]

    def _what(self) -> str:
        if self.external_task_ids:
            return f"Some of the external tasks {self.external_task_ids} in DAG {self.external_dag_id}"
        if self.external_task_group_id:
            return f"The external task_group '{self.external_task_group_id}' in DAG '{self.external_dag_id}'"
        return f"The external DAG {self.external_dag_id}"

    def poke(self, context: dict[str, Any]) -> bool:
        dates = self._dates(context)
        ids, group = self.external_task_ids, self.external_task_group_id
        if ids and len(ids) > len(set(ids)):
            raise ValueError("Duplicate task_ids passed in external_task_ids parameter")
        context["ti"].log.info("Poking for %s on %s ... ", ids or group or f"DAG {self.external_dag_id}",
                               ",".join(d.isoformat() for d in dates))
        if self.check_existence and not self._checked:
            problem = _states.missing(self.external_dag_id, ids, group)
            if problem:
                raise AirflowException(problem)
            self._checked = True
        if self.failed_states and _states.count(self.external_dag_id, dates, self.failed_states, ids, group) > 0:
            if self.soft_fail:
                raise AirflowSkipException(f"{self._what()} failed. Skipping due to soft_fail.")
            raise AirflowException(f"{self._what()} failed.")
        if self.skipped_states and _states.count(self.external_dag_id, dates, self.skipped_states, ids, group) > 0:
            raise AirflowSkipException(f"{self._what()} reached a state in our states-to-skip-on list. Skipping.")
        return _states.count(self.external_dag_id, dates, self.allowed_states, ids, group) == len(dates)

    async def execute(self, context: dict[str, Any]) -> None:
        started = time.monotonic()
        while True:
            if self.poke(context):
                context["ti"].log.info("Success criteria met. Exiting.")
                return
            duration = time.monotonic() - started
            if duration > self.timeout:
                message = (f"Sensor has timed out; run duration of {duration} seconds exceeds the specified "
                           f"timeout of {self.timeout}.")
                if self.soft_fail:
                    raise AirflowSkipException(message)
                raise AirflowSensorTimeout(message)
            await asyncio.sleep(self.poke_interval)


class ExternalTaskMarker(EmptyOperator):
    """An empty task naming the task of another DAG that depends on it: a recursive clear of it clears
    that task (and its downstream) in the run at `execution_date` (rtstream.dags.clearing)."""

    template_fields = ("external_dag_id", "external_task_id", "execution_date")
    ui_color = "#4db7db"

    def __init__(self, *, external_dag_id: str, external_task_id: str,
                 execution_date: str | datetime | None = "{{ logical_date.isoformat() }}", recursion_depth: int = 10,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.external_dag_id, self.external_task_id = external_dag_id, external_task_id
        if isinstance(execution_date, datetime):
            self.execution_date: str = execution_date.isoformat()
        elif isinstance(execution_date, str):
            self.execution_date = execution_date
        else:
            raise TypeError(f"Expected str or datetime.datetime type for execution_date. Got {type(execution_date)}")
        if recursion_depth <= 0:
            raise ValueError("recursion_depth should be a positive integer")
        self.recursion_depth = recursion_depth


NAMES = {"ExternalTaskSensor": ExternalTaskSensor, "ExternalTaskMarker": ExternalTaskMarker}
