"""Sensors, as Airflow 2.10's `BaseSensorOperator.execute` (and Airflow 3's, the same loop) runs them:
`poke(context)` until it returns something true (a `PokeReturnValue`'s `xcom_value` is the return
value), at `poke_interval` (with `exponential_backoff` and `max_wait`), failing with
`AirflowSensorTimeout` (no retry, as in Airflow) or skipping under `soft_fail` after `timeout`
(default 7 days, Airflow's `[sensors] default_timeout`); `silent_fail` and `never_fail` as in Airflow.

What differs: the waits between pokes are asyncio sleeps on the run's loop, never a thread: the
poke itself (user code) runs in a thread. `mode="reschedule"` waits the same way (Airflow frees the
worker slot and runs the task again; the states and the try number come out the same). Deferrable
sensors (`TimeDeltaSensorAsync`, `deferrable=True`, `DateTimeSensorAsync`, `TimeSensorAsync`) wait for
their moment as an asyncio sleep, as Airflow's triggerer waits for the `DateTimeTrigger`.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import inspect
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from typing import Any, ClassVar

from rtstream.airflow.operator_base import BaseOperator
from rtstream.airflow.operators import call_kwargs
from rtstream.airflow.run_support import run_on_loop
from rtstream.airflow.states import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    AirflowTaskTimeout,
)

DEFAULT_TIMEOUT = 7 * 24 * 3600.0  # Airflow's [sensors] default_timeout


class PokeReturnValue:
    """A poke's answer: done or not, and the value to keep as the sensor's XCom."""

    def __init__(self, is_done: bool, xcom_value: Any | None = None) -> None:
        self.xcom_value, self.is_done = xcom_value, is_done

    def __bool__(self) -> bool:
        return self.is_done


def _seconds(value: timedelta | float | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    raise AirflowException(f"Operator arg `{name}` must be timedelta object or a non-negative number")


class BaseSensorOperator(BaseOperator):
    ui_color = "#e6f1f2"
    valid_modes: ClassVar[tuple[str, ...]] = ("poke", "reschedule")

    def __init__(self, *, poke_interval: timedelta | float = 60, timeout: timedelta | float = DEFAULT_TIMEOUT,
                 soft_fail: bool = False, mode: str = "poke", exponential_backoff: bool = False,
                 max_wait: timedelta | float | None = None, silent_fail: bool = False, never_fail: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.poke_interval = _seconds(poke_interval, "poke_interval") or 0.0
        self.timeout = _seconds(timeout, "timeout") or 0.0
        self.max_wait = _seconds(max_wait, "max_wait")
        if mode not in self.valid_modes:
            raise AirflowException(f"The mode must be one of {self.valid_modes},'{self.task_id}'; received '{mode}'.")
        if soft_fail and never_fail:
            raise ValueError("soft_fail and never_fail are mutually exclusive, you can not provide both.")
        self.soft_fail, self.mode, self.exponential_backoff = soft_fail, mode, exponential_backoff
        self.silent_fail, self.never_fail = silent_fail, never_fail

    @property
    def reschedule(self) -> bool:
        return self.mode == "reschedule"

    def poke(self, context: dict[str, Any]) -> bool | PokeReturnValue:
        raise AirflowException("Override me.")

    def next_poke_interval(self, started_at: float, duration: float, poke_count: int) -> float:
        """Airflow's `_get_next_poke_interval` (poke mode's count; its jitter hashes the start)."""
        if not self.exponential_backoff:
            return self.poke_interval
        min_backoff = max(int(self.poke_interval * (2 ** (poke_count - 2))), 1)
        digest = hashlib.sha1(f"{self.dag_id}#{self.task_id}#{started_at}#{poke_count}".encode()).hexdigest()
        interval = min(float(min_backoff + int(digest, 16) % min_backoff), self.timeout - int(duration))
        return min(self.max_wait, interval) if self.max_wait else interval

    def _poked(self, context: dict[str, Any]) -> Any:
        try:
            return self.poke(context)
        except (AirflowSensorTimeout, AirflowTaskTimeout, AirflowFailException) as exc:
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(f"Skipping due to {'soft_fail' if self.soft_fail else 'never_fail'} "
                                           "is set to True.") from exc
            raise
        except AirflowSkipException:
            raise
        except Exception as exc:
            if self.silent_fail:
                return False
            if self.never_fail:
                raise AirflowSkipException("Skipping due to never_fail is set to True.") from exc
            raise

    def timed_out(self, duration: float) -> Exception:
        message = (f"Sensor has timed out; run duration of {duration} seconds exceeds the specified "
                   f"timeout of {self.timeout}.")
        return AirflowSkipException(message) if self.soft_fail else AirflowSensorTimeout(message)

    async def async_execute(self, context: dict[str, Any]) -> Any:
        loop = asyncio.get_running_loop()
        if type(self).execute is not BaseOperator.execute:  # a sensor of the DAG's own with its own execute
            return await loop.run_in_executor(None, contextvars.copy_context().run, self.execute, context)
        started = time.monotonic()
        poke_count = 1
        while True:
            answer = await loop.run_in_executor(None, contextvars.copy_context().run, self._poked, context)
            if answer:
                return answer.xcom_value if isinstance(answer, PokeReturnValue) else None
            duration = time.monotonic() - started
            if duration > self.timeout:
                raise self.timed_out(duration)
            await asyncio.sleep(max(0.0, self.next_poke_interval(started, duration, poke_count)))
            poke_count += 1

    async def wait_until(self, moment: datetime) -> None:
        """A deferral on a DateTimeTrigger: an asyncio sleep to `moment`, bounded by `timeout`."""
        wait = (moment - datetime.now(UTC)).total_seconds()
        if wait > self.timeout:
            await asyncio.sleep(self.timeout)
            raise self.timed_out(self.timeout)
        await asyncio.sleep(max(0.0, wait))


class PythonSensor(BaseSensorOperator):
    template_fields: ClassVar[tuple[str, ...]] = ("templates_dict", "op_args", "op_kwargs")

    def __init__(self, *, python_callable: Callable[..., Any], op_args: Iterable[Any] | None = None,
                 op_kwargs: dict[str, Any] | None = None, templates_dict: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not callable(python_callable):
            raise AirflowException(f"task {self.task_id!r}: python_callable is not callable: {python_callable!r}")
        self.python_callable, self.templates_dict = python_callable, templates_dict
        self.op_args, self.op_kwargs = list(op_args or []), dict(op_kwargs or {})

    def poke(self, context: dict[str, Any]) -> PokeReturnValue:
        merged = {**context, **self.op_kwargs, "templates_dict": self.templates_dict}
        result = self.python_callable(*self.op_args, **call_kwargs(self.python_callable, len(self.op_args), merged))
        if inspect.isawaitable(result):
            result = run_on_loop(result)
        return result if isinstance(result, PokeReturnValue) else PokeReturnValue(bool(result))


class DecoratedSensorOperator(PythonSensor):
    """`@task.sensor`: the function is the poke."""


def _base_time(context: dict[str, Any]) -> datetime:
    end = context.get("data_interval_end")
    if end:
        return end  # type: ignore[no-any-return]
    run_after = getattr(context.get("dag_run"), "run_after", None)
    if run_after is None:
        raise ValueError("`data_interval_end` not found in task context.")
    return run_after  # type: ignore[no-any-return]


class TimeDeltaSensor(BaseSensorOperator):
    """Waits until `delta` after the run's data interval end; `deferrable=True` waits as a deferral."""

    template_fields: ClassVar[tuple[str, ...]] = ("delta",)

    def __init__(self, *, delta: timedelta | int, deferrable: bool = False, end_from_trigger: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delta, self.deferrable, self.end_from_trigger = delta, deferrable, end_from_trigger

    def _target(self, context: dict[str, Any]) -> datetime:
        delta = self.delta if isinstance(self.delta, timedelta) else timedelta(minutes=int(self.delta))
        return _base_time(context) + delta

    def poke(self, context: dict[str, Any]) -> bool:
        return datetime.now(UTC) > self._target(context)

    async def async_execute(self, context: dict[str, Any]) -> Any:
        if not self.deferrable:
            return await super().async_execute(context)
        target = self._target(context)
        if datetime.now(UTC) > target:
            return True  # already past: Airflow returns at once, and True is the XCom
        await self.wait_until(target)
        return None  # execute_complete returns None


class TimeDeltaSensorAsync(TimeDeltaSensor):
    def __init__(self, *, delta: timedelta | int, end_from_trigger: bool = False, **kwargs: Any) -> None:
        kwargs.pop("deferrable", None)
        super().__init__(delta=delta, deferrable=True, end_from_trigger=end_from_trigger, **kwargs)


class DateTimeSensor(BaseSensorOperator):
    """Waits until `target_time` (a datetime, or a templated string Airflow's timezone.parse reads)."""

    template_fields: ClassVar[tuple[str, ...]] = ("target_time",)

    def __init__(self, *, target_time: str | datetime, deferrable: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(target_time, (str, datetime)):
            raise TypeError(f"Expected str or datetime.datetime type for target_time. Got {type(target_time)}")
        self.target_time, self.deferrable = target_time, deferrable

    def _moment(self) -> datetime:
        value = self.target_time if isinstance(self.target_time, datetime) else datetime.fromisoformat(
            str(self.target_time))
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def poke(self, context: dict[str, Any]) -> bool:
        return datetime.now(UTC) > self._moment()

    async def async_execute(self, context: dict[str, Any]) -> Any:
        if not self.deferrable:
            return await super().async_execute(context)
        await self.wait_until(self._moment())
        return None


class DateTimeSensorAsync(DateTimeSensor):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("deferrable", None)
        super().__init__(deferrable=True, **kwargs)


class TimeSensor(BaseSensorOperator):
    """Waits until the time of day `target_time` in the DAG's time zone."""

    def __init__(self, *, target_time: dt_time, deferrable: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target_time, self.deferrable = target_time, deferrable

    def _moment(self) -> datetime:
        tz = getattr(self.dag, "timezone", None) or UTC
        today = datetime.now(tz).date()
        return datetime.combine(today, self.target_time, tzinfo=self.target_time.tzinfo or tz).astimezone(UTC)

    def poke(self, context: dict[str, Any]) -> bool:
        # Airflow compares the time of day in the DAG's time zone, naive
        return datetime.now(getattr(self.dag, "timezone", None) or UTC).time() > self.target_time.replace(tzinfo=None)

    async def async_execute(self, context: dict[str, Any]) -> Any:
        if not self.deferrable:
            return await super().async_execute(context)
        await self.wait_until(self._moment())
        return None


class TimeSensorAsync(TimeSensor):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("deferrable", None)
        super().__init__(deferrable=True, **kwargs)


NAMES: dict[str, Any] = {cls.__name__: cls for cls in (
    PokeReturnValue, BaseSensorOperator, PythonSensor, TimeDeltaSensor, TimeDeltaSensorAsync, DateTimeSensor,
    DateTimeSensorAsync, TimeSensor, TimeSensorAsync)}
