"""Sensors in the daemon wait as asyncio sleeps (a deferral and the waits between pokes): a SIGTERM
while they wait stops the daemon within its shutdown grace, exit 0, as for any try in flight; the
next start picks the interrupted tries up again (counted as failed tries, retried: Airflow's zombies)."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.support import LOOPS, Daemon, wait_until, write_config

DAG = '''
from datetime import datetime, timedelta
from airflow import DAG
from airflow.sensors.python import PythonSensor
from airflow.sensors.time_delta import TimeDeltaSensorAsync

with DAG("waits", schedule="@once", start_date=datetime(2024, 1, 1)):
    TimeDeltaSensorAsync(task_id="deferred", delta=timedelta(days=3650), retries=3, retry_delay=0)
    PythonSensor(task_id="poking", python_callable=lambda: False, poke_interval=3600, retries=3, retry_delay=0)
'''


def _tis(db: Path) -> dict[str, tuple[str, int]]:
    if not db.exists():
        return {}
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
            return {t: (s, n) for t, s, n in conn.execute(
                "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = 'waits'")}
    except sqlite3.OperationalError:
        return {}


@pytest.mark.parametrize("attempt", range(LOOPS))
def test_sigterm_while_sensors_wait_stops_within_the_grace(tmp_path: Path, attempt: int) -> None:
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "waits.py").write_text(DAG)
    db = tmp_path / "state" / "dag_runs.db"
    config = write_config(tmp_path / "dags.toml", {"dags": {"path": "dags"},
                                                   "daemon": {"state_dir": "state", "shutdown_grace": "2s"}})
    for n_try in (1, 2):
        daemon = Daemon(config, tmp_path)
        try:
            wait_until(lambda n=n_try: _tis(db) == {"deferred": ("running", n), "poking": ("running", n)}, 60,
                       what=f"both sensors waiting in try {n_try}")
            time.sleep(0.3)  # inside the wait, past the first poke
            started = time.monotonic()
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(20) == 0, daemon.stderr[-2000:]
            assert time.monotonic() - started < 10  # the grace (2 s) and the exit, not the sensors' waits
            assert "Traceback" not in daemon.stderr, daemon.stderr[-2000:]
        finally:
            if daemon.proc.poll() is None:
                daemon.kill()
