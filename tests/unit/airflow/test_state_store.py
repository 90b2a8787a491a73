"""Airflow 3.3's task and asset state stores, as its task SDK gives them (context["task_state_store"],
context["asset_state_store"]): a later try sees what an earlier try set, mapped instances each have
their own, an asset's state lasts across runs; JSON values only, None refused; the task accessor has
no async methods in 3.3 (its own example_task_state_store_async fails on `aget`, recorded by running
Airflow 3.3.2 at 2026-06-03: failed after 3 tries). A DAG file for Airflow 2 has neither key. The daemon
keeps both in dag_runs.db: a try interrupted by a kill finds its state on the next try."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rtstream.airflow.context import make_dag_run
from rtstream.airflow.dag_run import DagRun, RunResult
from rtstream.airflow.dagbag import load
from rtstream.airflow.state_store import MemoryStateBackend
from rtstream.dags import state_tables
from rtstream.dags.durable_run import DurableDagRun
from rtstream.dags.scheduler import run_id_of
from rtstream.dags.store import RunStore

AT = datetime(2026, 6, 3, tzinfo=UTC)
pytestmark = pytest.mark.usefixtures("stand_in")

DAG_FILE = '''
from datetime import datetime, timedelta
from airflow.sdk import DAG, Asset, task
from airflow.sdk.execution_time.context import NEVER_EXPIRE

ORDERS = Asset(name="orders", uri="s3://w/orders")
OTHER = Asset("s3://w/other")

with DAG("st", schedule=None, start_date=datetime(2026, 1, 1)):
    @task(retries=2, retry_delay=0)
    def reattach(task_state_store=None, ti=None):
        job = task_state_store.get("job")
        if job is None:
            task_state_store.set("job", f"job-{ti.try_number}", retention=NEVER_EXPIRE)
            task_state_store.set("meta", {"tries": [ti.try_number], "ok": True}, retention=timedelta(hours=1))
            raise RuntimeError("submitted, then failed")
        return [job, task_state_store.get("meta"), task_state_store.get("missing", default=7)]

    @task
    def per_instance(n, task_state_store=None):
        task_state_store.set("n", n)
        return task_state_store.get("n")

    @task
    def refuses(task_state_store=None):
        errors = []
        for value in (None, {1, 2}, float("nan")):
            try:
                task_state_store.set("k", value)
            except (TypeError, ValueError) as exc:
                errors.append(type(exc).__name__)
        task_state_store.set("gone", 1)
        task_state_store.delete("gone")
        task_state_store.set("also", 2)
        task_state_store.clear()
        return errors + [task_state_store.get("gone"), task_state_store.get("also"),
                         hasattr(task_state_store, "aget")]

    @task(inlets=[ORDERS], outlets=[ORDERS])
    def produce(asset_state_store=None):
        runs = asset_state_store[ORDERS].get("runs", default=0) + 1
        asset_state_store.set("runs", runs)  # one asset: the mapping's own methods work
        return runs

    @task(inlets=[ORDERS, OTHER])
    def two_assets(asset_state_store=None):
        out = [asset_state_store[ORDERS].get("runs")]
        try:
            asset_state_store.get("runs")
        except ValueError as exc:
            out.append(str(exc))
        try:
            asset_state_store[Asset("s3://w/elsewhere")]
        except KeyError as exc:
            out.append(str(exc))
        return out

    @task.python
    async def async_asset(asset_state_store=None):
        await asset_state_store.aset("seen", True)
        return await asset_state_store.aget("seen")

    async_asset.override(task_id="async_asset", inlets=[OTHER])()
    produce() >> two_assets()
    reattach()
    per_instance.expand(n=[1, 2])
    refuses()
'''


def run(tmp_path: Path, source: str = DAG_FILE, backend: MemoryStateBackend | None = None) -> RunResult:
    (tmp_path / "st.py").write_text(source)
    bag = load(tmp_path / "st.py")
    assert bag.import_errors == {}
    dag_run = DagRun(bag.dags["st"], AT)
    if backend is not None:
        dag_run.state_backend = backend
    return asyncio.run(dag_run.run())


def test_a_later_try_sees_what_an_earlier_try_set(tmp_path: Path) -> None:
    r = run(tmp_path, backend=MemoryStateBackend())
    s = {(ti.task_id, ti.map_index): (ti.state, ti.try_number) for ti in r.task_instances}
    assert s[("reattach", -1)] == ("success", 2)
    assert r.xcoms.of("reattach", -1) == {"return_value": ["job-1", {"tries": [1], "ok": True}, 7]}
    assert [r.xcoms.of("per_instance", i)["return_value"] for i in (0, 1)] == [1, 2]
    assert r.xcoms.of("refuses", -1) == {"return_value": ["ValueError", "TypeError", "TypeError", None, None, False]}
    assert r.run_state == "success"


def test_asset_state_lasts_across_runs_and_needs_the_asset(tmp_path: Path) -> None:
    backend = MemoryStateBackend()
    first, second = run(tmp_path, backend=backend), run(tmp_path, backend=backend)
    assert first.xcoms.of("produce", -1) == {"return_value": 1}
    assert second.xcoms.of("produce", -1) == {"return_value": 2}
    assert second.xcoms.of("two_assets", -1)["return_value"] == [
        2, "Task has 2 concrete inlets and outlets — use context['asset_state_store'][MY_ASSET] to specify which",
        "\"Asset(name='s3://w/elsewhere', uri='s3://w/elsewhere', group='asset', extra={}) is not in this task's "
        "inlets or outlets\""]
    assert second.xcoms.of("async_asset", -1) == {"return_value": True}


def test_odd_ids_keys_and_huge_values(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Scopes cannot collide whatever bytes the ids hold; a huge value is kept with Airflow's warning."""
    backend = state_tables.SqliteStateBackend(tmp_path / "s.db")
    odd = ("task", "d\x1fx", "r", "t", -1)
    backend.set(odd, "k\x00é", '"a"', None)
    backend.set(("task", "d", "x\x1fr", "t", -1), "k\x00é", '"b"', None)
    assert (backend.get(odd, "k\x00é"), backend.get(("task", "d", "x\x1fr", "t", -1), "k\x00é")) == ('"a"', '"b"')
    backend.close()
    r = run(tmp_path, DAG_FILE.replace('task_state_store.set("n", n)', 'task_state_store.set("n", n); '
                                       'task_state_store.set("big", "x" * 70000)'), MemoryStateBackend())
    assert r.run_state == "success"
    assert "Task store value for key 'big' is 70002 bytes, which exceeds max_value_storage_bytes=65535" in caplog.text


def test_airflow2_dags_have_no_state_store(tmp_path: Path) -> None:
    source = '''
from datetime import datetime
from airflow import DAG
from airflow.decorators import task

with DAG("st", schedule=None, start_date=datetime(2026, 1, 1)):
    @task
    def look(**context):
        return sorted(k for k in context if "state_store" in k)

    look()
'''
    assert run(tmp_path, source).xcoms.of("look", -1) == {"return_value": []}


def test_the_daemon_keeps_task_state_across_a_kill(tmp_path: Path) -> None:
    """A try that set its job id and was then killed (the store says `running`) is a zombie on restart:
    the next try, in a new process, finds the job id in dag_runs.db."""
    (tmp_path / "st.py").write_text(DAG_FILE)
    dag = load(tmp_path / "st.py").dags["st"]
    path = tmp_path / "dag_runs.db"
    store = RunStore(path)
    run_id = run_id_of("scheduled", AT)
    stored = store.create_run("st", run_id, AT, (AT, AT), "scheduled", AT)
    store.save_ti("st", run_id, "reattach", -1, "running", 1, None, None, datetime.now(UTC))
    killed = state_tables.SqliteStateBackend(path)  # what the killed process's try wrote
    killed.set(("task", "st", run_id, "reattach", -1), "job", '"job-before-the-kill"', None)
    killed.set(("asset", "name", "orders"), "runs", "41", None)
    killed.close()
    state_tables._open.clear()  # a new process
    info = dataclasses.replace(make_dag_run("st", AT, (AT, AT)), run_id=run_id, run_type="scheduled")
    result = asyncio.run(DurableDagRun(dag, stored, store, info).run())
    got = {ti.task_id: (ti.state, ti.try_number) for ti in result.task_instances if ti.map_index < 0}
    assert got["reattach"] == ("success", 2)
    assert result.xcoms.of("reattach", -1)["return_value"][0] == "job-before-the-kill"
    assert result.xcoms.of("produce", -1) == {"return_value": 42}
    again = state_tables.SqliteStateBackend(path)
    assert again.get(("asset", "name", "orders"), "runs") == "42"
    again.close()
    state_tables._open.clear()
    store.close()
