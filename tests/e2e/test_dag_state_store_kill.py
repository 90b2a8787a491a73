"""Airflow 3's task state store in the daemon, across a SIGKILL: a try that submitted a job and kept its
id is killed; on restart the interrupted try counts as failed (Airflow's zombie handling) and the next
try finds the job id in dag_runs.db and reattaches, so the job is submitted exactly once."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
from pathlib import Path

import pytest

from tests.support import LOOPS, Daemon, wait_until, write_config

DAG = '''
import os
import uuid
from datetime import datetime
from airflow.sdk import DAG, task

OUT = os.environ["RTSTREAM_JOB_OUT"]

def note(line):
    with open(OUT, "a") as f:
        f.write(line + "\\n")
        f.flush()

with DAG("reattach", schedule="@once", start_date=datetime(2024, 1, 1)):
    @task(retries=1, retry_delay=0)
    def job(task_state_store=None, ti=None):
        job_id = task_state_store.get("job_id")
        if job_id is None:
            job_id = f"job-{uuid.uuid4().hex[:8]}"
            task_state_store.set("job_id", job_id)
            note(f"submitted {job_id} try {ti.try_number}")
            import time
            time.sleep(120)  # killed here
        note(f"reattached {job_id} try {ti.try_number}")
        return job_id

    job()
'''


def _run_state(db: Path) -> str | None:
    if not db.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
            row = conn.execute("SELECT state FROM dag_run WHERE dag_id = 'reattach'").fetchone()
            return row[0] if row else None
    except sqlite3.OperationalError:
        return None


@pytest.mark.parametrize("attempt", range(LOOPS))
def test_a_killed_try_reattaches_through_the_task_state_store(tmp_path: Path, attempt: int) -> None:
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "reattach.py").write_text(DAG)
    out, db = tmp_path / "jobs.txt", tmp_path / "state" / "dag_runs.db"
    config = write_config(tmp_path / "dags.toml", {"dags": {"path": "dags"},
                                                   "daemon": {"state_dir": "state", "shutdown_grace": "2s"}})
    env = {"RTSTREAM_JOB_OUT": str(out)}
    first = Daemon(config, tmp_path, env=env)
    try:
        wait_until(lambda: out.exists() and "submitted" in out.read_text(), 60, what="the job's submission")
    finally:
        first.kill()  # SIGKILL, mid-try
    second = Daemon(config, tmp_path, env=env)
    try:
        wait_until(lambda: _run_state(db) == "success", 60, what="the run's success after the restart")
        second.signal(signal.SIGTERM)
        assert second.wait(30) == 0, second.stderr[-2000:]
    finally:
        if second.proc.poll() is None:
            second.kill()
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and lines[0].startswith("submitted job-") and lines[0].endswith(" try 1"), lines
    job_id = lines[0].split()[1]
    assert lines[1] == f"reattached {job_id} try 2", lines
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT state, try_number FROM task_instance WHERE dag_id = 'reattach'").fetchall() == \
            [("success", 2)]
        scope = json.dumps(["task", "reattach", conn.execute("SELECT run_id FROM dag_run").fetchone()[0], "job", -1])
        assert conn.execute("SELECT value FROM task_state_store WHERE scope = ?", (scope,)).fetchall() == \
            [(f'"{job_id}"',)]
