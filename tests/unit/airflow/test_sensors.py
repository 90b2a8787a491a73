"""Sensors as Airflow's BaseSensorOperator runs them (poke, PokeReturnValue, timeout without retry,
soft_fail, silent_fail, never_fail) and deferrable time sensors as asyncio waits that hold no thread.
Corpus matches: example_sensor_decorator, example_time_delta_sensor_async (2.10.5 and 3.3.2)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rtstream.airflow.dag_run import DagRun, RunResult
from rtstream.airflow.dagbag import load

pytestmark = pytest.mark.usefixtures("stand_in")

HEAD = '''
from datetime import datetime, timedelta
from airflow.decorators import task
from airflow.models.dag import DAG
from airflow.operators.empty import EmptyOperator
from airflow.sensors.base import BaseSensorOperator, PokeReturnValue
from airflow.sensors.python import PythonSensor
from airflow.sensors.time_delta import TimeDeltaSensor, TimeDeltaSensorAsync

POKES = {}

def count(name):
    POKES[name] = POKES.get(name, 0) + 1
    return POKES[name]

with DAG("s", schedule=None, start_date=datetime(2024, 1, 1), max_active_tasks=64):
'''


def run(tmp_path: Path, body: str, at: datetime | None = None) -> tuple[RunResult, dict[str, tuple[str | None, int]]]:
    (tmp_path / "s.py").write_text(HEAD + body)
    bag = load(tmp_path / "s.py")
    assert bag.import_errors == {} and bag.refused_tasks(bag.dags["s"]) == []
    r = asyncio.run(DagRun(bag.dags["s"], at or datetime(2024, 6, 3, tzinfo=UTC)).run())
    return r, {ti.task_id: (ti.state, ti.try_number) for ti in r.task_instances}


def test_a_sensor_pokes_until_done_and_keeps_the_poke_value(tmp_path: Path) -> None:
    r, s = run(tmp_path, '''
    @task.sensor(poke_interval=0.05, timeout=30, mode="reschedule")
    def third_time() -> PokeReturnValue:
        n = count("third")
        return PokeReturnValue(is_done=n >= 3, xcom_value=f"poke {n}")

    def truthy():
        return count("plain") >= 2

    third_time() >> EmptyOperator(task_id="after")
    PythonSensor(task_id="plain", python_callable=truthy, poke_interval=0.05)
''')
    assert s == {"third_time": ("success", 1), "after": ("success", 1), "plain": ("success", 1)}
    assert r.xcoms.of("third_time", -1) == {"return_value": "poke 3"}
    assert r.xcoms.of("plain", -1) == {}  # a bool poke gives no XCom


def test_timeout_fails_without_retry_or_skips_under_soft_fail(tmp_path: Path) -> None:
    r, s = run(tmp_path, '''
    never = PythonSensor(task_id="never", python_callable=lambda: False, poke_interval=0.05, timeout=0.2,
                         retries=3, retry_delay=0)
    never >> EmptyOperator(task_id="after_never")
    soft = PythonSensor(task_id="soft", python_callable=lambda: False, poke_interval=0.05, timeout=0.2,
                        soft_fail=True)
    soft >> EmptyOperator(task_id="after_soft")
''')
    assert s["never"] == ("failed", 1)  # AirflowSensorTimeout: no retry though retries=3
    assert s["after_never"] == ("upstream_failed", 0)
    assert (s["soft"], s["after_soft"]) == (("skipped", 1), ("skipped", 0))
    assert r.run_state == "failed"


def test_poke_errors_under_silent_fail_never_fail_and_neither(tmp_path: Path) -> None:
    _, s = run(tmp_path, '''
    def flaky():
        if count("flaky") == 1:
            raise ValueError("not yet")
        return True

    def broken():
        raise ValueError("broken")

    PythonSensor(task_id="silent", python_callable=flaky, poke_interval=0.05, silent_fail=True)
    PythonSensor(task_id="never_fail", python_callable=broken, poke_interval=0.05, never_fail=True)
    PythonSensor(task_id="plain", python_callable=broken, poke_interval=0.05)
''')
    assert s == {"silent": ("success", 1), "never_fail": ("skipped", 1), "plain": ("failed", 1)}


def test_wrong_sensor_arguments_are_load_errors(tmp_path: Path) -> None:
    for bad, error in (('mode="sometimes"', "The mode must be one of"), ("poke_interval=-1", "poke_interval"),
                       ("soft_fail=True, never_fail=True", "mutually exclusive")):
        (tmp_path / "s.py").write_text(HEAD + f'    PythonSensor(task_id="x", python_callable=print, {bad})\n')
        assert error in next(iter(load(tmp_path / "s.py").import_errors.values())), bad


def test_time_delta_sensors_past_and_future(tmp_path: Path) -> None:
    body = '''
    TimeDeltaSensorAsync(task_id="async_wait", delta=timedelta(seconds=0.4))
    TimeDeltaSensor(task_id="deferred", delta=timedelta(seconds=0.4), deferrable=True)
    TimeDeltaSensor(task_id="poking", delta=timedelta(seconds=0.4), poke_interval=0.05)
'''
    r, s = run(tmp_path, body)  # an old logical date: the moment has passed
    assert all(v == ("success", 1) for v in s.values())
    assert r.xcoms.of("async_wait", -1) == r.xcoms.of("deferred", -1) == {"return_value": True}
    assert r.xcoms.of("poking", -1) == {}
    started = time.monotonic()
    r, s = run(tmp_path, body, at=datetime.now(UTC))  # schedule None: the data interval ends now
    took = time.monotonic() - started
    assert all(v == ("success", 1) for v in s.values())
    assert r.xcoms.of("async_wait", -1) == r.xcoms.of("deferred", -1) == {}  # execute_complete returns None
    assert 0.35 < took < 5


def test_waiting_sensors_hold_no_thread(tmp_path: Path) -> None:
    """Forty sensors waiting at once (deferrable and poke mode): the run's threads stay few and the
    waits overlap."""
    body = "".join(f'    TimeDeltaSensorAsync(task_id="d{i}", delta=timedelta(seconds=1))\n'
                   f'    TimeDeltaSensor(task_id="p{i}", delta=timedelta(seconds=1), poke_interval=0.2)\n'
                   for i in range(20))
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, threading.active_count())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    try:
        _, s = run(tmp_path, body, at=datetime.now(UTC))
    finally:
        done.set()
        sampler.join()
    assert all(v == ("success", 1) for v in s.values())
    assert time.monotonic() - started < 6
    assert peak < 20, peak  # one thread per waiting sensor would be 40 or more
