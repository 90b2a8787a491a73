"""A DAG run left half done in the run store (as a SIGKILL leaves it) resumes from its unfinished task
instances: finished ones are not run again, their XComs and branch decisions hold, and a try that was
running counts as failed (Airflow's zombie handling): retried with a try left, failed without."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rtstream.airflow.context import make_dag_run
from rtstream.airflow.dagbag import load
from rtstream.dags.durable_run import DurableDagRun
from rtstream.dags.scheduler import run_id_of
from rtstream.dags.store import RunStore

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "dags_daemon" / "resume.py"
LD = datetime(2024, 3, 4, tzinfo=UTC)
pytestmark = pytest.mark.usefixtures("stand_in")


def test_a_half_done_run_resumes_from_its_unfinished_task_instances(tmp_path: Path) -> None:
    dag = load(FIXTURE).dags["resume"]
    store = RunStore(tmp_path / "dag_runs.db")
    run_id = run_id_of("scheduled", LD)
    stored = store.create_run("resume", run_id, LD, (LD, datetime(2024, 3, 5, tzinfo=UTC)), "scheduled", LD)
    now = datetime.now(UTC)
    store.save_ti("resume", run_id, "a", -1, "running", 1, None, None, now)
    store.push_xcom("resume", run_id, "a", -1, "return_value", 5)
    store.save_ti("resume", run_id, "a", -1, "success", 1, None, None, now)
    store.save_ti("resume", run_id, "pick", -1, "success", 1, {"b"}, None, now)
    store.save_ti("resume", run_id, "zombie_last_try", -1, "running", 1, None, None, now)
    store.save_ti("resume", run_id, "zombie_with_retry", -1, "running", 1, None, None, now)

    info = make_dag_run("resume", LD, (stored.interval_start, stored.interval_end))
    result = asyncio.run(DurableDagRun(dag, stored, store, info).run())

    got = {ti.task_id: (ti.state, ti.try_number) for ti in result.task_instances}
    assert got == {"a": ("success", 1), "pick": ("success", 1), "b": ("success", 1), "c": ("skipped", 0),
                   "zombie_last_try": ("failed", 1), "after_zombie": ("upstream_failed", 0),
                   "zombie_with_retry": ("success", 2)}
    assert result.xcoms.of("b", -1) == {"return_value": 10}
    assert result.run_state == "failed"  # a leaf upstream_failed
    kept = {t.task_id: (t.state, t.try_number) for t in store.task_instances("resume", run_id)}
    assert kept == got
    assert ("b", -1, "return_value", 10) in store.xcoms("resume", run_id)
    # the run is keyed by its logical date: creating it again gives the one kept
    again = store.create_run("resume", "other", LD, (LD, LD), "scheduled", now)
    assert again.run_id == run_id
    store.close()
