"""`TriggerDagRunOperator` as Airflow 2.10 has it (airflow/operators/trigger_dagrun.py), to a DAG of the
same daemon: `trigger_dag`'s run (manual, queued, `manual__<logical date>` unless `trigger_run_id`),
the XComs `trigger_logical_date_iso` and `trigger_run_id` pushed before any wait, `reset_dag_run`
(clear the run that has that run id / logical date), `skip_when_already_exists`, and
`wait_for_completion` polling every `poke_interval` seconds until the run's state is in
`allowed_states` (success) or `failed_states` (the task fails).

The runs live where the caller keeps them: the daemon hands its store (rtstream.dags.triggering) as a
`RunTriggerer`; `rtstream dags test` hands the DAG bag (`BagRuns`: a queued run nothing runs, as
`airflow dags test` leaves it). The wait is a coroutine (asyncio.sleep): it holds no worker thread,
and a daemon's stop cancels it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from rtstream.airflow.operator_base import BaseOperator
from rtstream.airflow.states import AirflowException, AirflowSkipException, DagRunState

XCOM_LOGICAL_DATE_ISO = "trigger_logical_date_iso"
XCOM_RUN_ID = "trigger_run_id"
STATES = {s.value for s in DagRunState}


class DagNotFound(AirflowException):
    pass


class DagRunAlreadyExists(AirflowException):
    def __init__(self, message: str, run_id: str, logical_date: datetime):
        super().__init__(message)
        self.run_id, self.logical_date = run_id, logical_date


class RunTriggerer(Protocol):
    def trigger_run(self, dag_id: str, conf: dict[str, Any], logical_date: datetime, run_id: str) -> tuple[str, datetime]:
        """Create the run (queued); (its run id, logical date). Raises DagNotFound, DagRunAlreadyExists."""
        ...

    def run_state(self, dag_id: str, run_id: str) -> str | None: ...

    def reset_run(self, dag_id: str, run_id: str) -> None:
        """Clear every task instance of that run so it runs again (Airflow's `dag.clear`)."""
        ...


class BagRuns:
    """`dags test`'s runs: kept in memory, never run (no scheduler), as `airflow dags test` leaves them queued."""

    def __init__(self, known: Callable[[str], bool]):
        self.known = known  # whether a DAG of that id is in the DAG folder (Airflow's DagModel)
        self.runs: dict[tuple[str, str], tuple[datetime, str]] = {}
        self._lock = threading.Lock()

    def trigger_run(self, dag_id: str, conf: dict[str, Any], logical_date: datetime, run_id: str) -> tuple[str, datetime]:
        if not self.known(dag_id):
            raise DagNotFound(f"Dag id {dag_id} not found in DagModel")
        with self._lock:
            for (d, rid), (at, _) in self.runs.items():
                if d == dag_id and (rid == run_id or at == logical_date):
                    raise DagRunAlreadyExists(f"A Dag Run already exists for dag id {dag_id} at {logical_date} "
                                              f"with run id {run_id}", rid, at)
            self.runs[(dag_id, run_id)] = (logical_date, "queued")
        return run_id, logical_date

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        got = self.runs.get((dag_id, run_id))
        return got[1] if got else None

    def reset_run(self, dag_id: str, run_id: str) -> None:
        at, _ = self.runs[(dag_id, run_id)]
        self.runs[(dag_id, run_id)] = (at, "queued")


_triggerer: RunTriggerer | None = None


def use_triggerer(triggerer: RunTriggerer | None) -> None:
    """Where TriggerDagRunOperator creates runs in this process (the daemon's store, or dags test's bag)."""
    global _triggerer
    _triggerer = triggerer


def _parse_date(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        at = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise AirflowException(f"logical_date: {str(value)[:60]!r} is not a date-time") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)  # timezone.parse: naive is UTC


class TriggerDagRunOperator(BaseOperator):
    template_fields = ("trigger_dag_id", "trigger_run_id", "logical_date", "conf", "wait_for_completion",
                       "skip_when_already_exists")
    template_fields_renderers = {"conf": "py"}
    ui_color = "#ffefeb"

    def __init__(self, *, trigger_dag_id: str, trigger_run_id: str | None = None, conf: dict[str, Any] | None = None,
                 logical_date: str | datetime | None = None, reset_dag_run: bool = False,
                 wait_for_completion: bool = False, poke_interval: float = 60,
                 allowed_states: list[Any] | None = None, failed_states: list[Any] | None = None,
                 skip_when_already_exists: bool = False, deferrable: bool = False,
                 execution_date: str | datetime | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.trigger_dag_id, self.trigger_run_id, self.conf = trigger_dag_id, trigger_run_id, conf
        self.reset_dag_run, self.wait_for_completion = reset_dag_run, wait_for_completion
        self.poke_interval = poke_interval
        self.allowed_states = [self._state(s) for s in allowed_states] if allowed_states else ["success"]
        self.failed_states = [self._state(s) for s in failed_states] if failed_states or failed_states == [] \
            else ["failed"]
        self.skip_when_already_exists, self.deferrable = skip_when_already_exists, deferrable
        if execution_date is not None:
            logical_date = execution_date  # deprecated alias, as Airflow 2.10
        if logical_date is not None and not isinstance(logical_date, (str, datetime)):
            raise TypeError("Expected str or datetime.datetime type for parameter 'logical_date'. "
                            f"Got {type(logical_date).__name__}")
        self.logical_date = logical_date

    def _state(self, s: Any) -> str:
        value = str(getattr(s, "value", s))
        if value not in STATES:
            raise ValueError(f"{value!r} is not a valid DagRunState")
        return value

    async def execute(self, context: dict[str, Any]) -> None:
        triggerer = _triggerer
        if triggerer is None:
            raise DagNotFound(f"Dag id {self.trigger_dag_id} not found: no DAGs are run beside this one")
        at = _parse_date(self.logical_date) if self.logical_date is not None else datetime.now(UTC)
        try:
            json.dumps(self.conf)
        except TypeError:
            raise AirflowException("conf parameter should be JSON Serializable") from None
        run_id = str(self.trigger_run_id) if self.trigger_run_id else f"manual__{at.astimezone(UTC).isoformat()}"
        try:
            run_id, at = triggerer.trigger_run(str(self.trigger_dag_id), dict(self.conf or {}), at, run_id)
        except DagRunAlreadyExists as exc:
            if self.reset_dag_run:
                context["ti"].log.info("Clearing %s on %s", self.trigger_dag_id, exc.logical_date)
                triggerer.reset_run(str(self.trigger_dag_id), exc.run_id)
                run_id, at = exc.run_id, exc.logical_date
            elif self.skip_when_already_exists:
                raise AirflowSkipException("Skipping due to skip_when_already_exists is set to True and "
                                           "DagRunAlreadyExists") from None
            else:
                raise
        ti = context["task_instance"]
        ti.xcom_push(key=XCOM_LOGICAL_DATE_ISO, value=at.isoformat())
        ti.xcom_push(key=XCOM_RUN_ID, value=run_id)
        if not self.wait_for_completion:
            return
        while True:
            ti.log.info("Waiting for %s on %s to become allowed state %s ...", self.trigger_dag_id, at,
                        self.allowed_states)
            await asyncio.sleep(float(self.poke_interval))
            state = triggerer.run_state(str(self.trigger_dag_id), run_id)
            if state in self.failed_states:
                raise AirflowException(f"{self.trigger_dag_id} failed with failed states {state}")
            if state in self.allowed_states:
                ti.log.info("%s finished with allowed state %s", self.trigger_dag_id, state)
                return


NAMES = {"TriggerDagRunOperator": TriggerDagRunOperator, "DagNotFound": DagNotFound,
         "DagRunAlreadyExists": DagRunAlreadyExists}
