"""depends_on_past and wait_for_downstream through the real `rtstream run --dags DIR`
(tests/fixtures/dags_past): a task instance whose previous one failed (or whose previous one's
downstream failed) waits without a state, its run stays running, across a SIGKILL and restart too;
a clear of the previous run that succeeds lets it go on. Checked against the tries the tasks
themselves recorded, in the order they ran, and the runs the store keeps."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rtstream.testing.peers.ports import free_port
from tests.e2e.dag_grid_support import TOKEN, call
from tests.faults.test_policies import AlertReceiver
from tests.http_peers import ThreadedServer
from tests.support import Daemon, read_jsonl, wait_until, write_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dags_past"
HELD = "depends_on_past is true for this task, but 1 previous task instance(s) are not in a successful state."
DOWN = "The tasks downstream of the previous task instance(s) haven't completed, and wait_for_downstream is True."


class PastSetup:
    def __init__(self, tmp: Path, alert: dict[str, Any] | None = None):
        self.tmp = tmp
        dags = tmp / "dags"
        dags.mkdir()
        (dags / "past_dags.py").write_text((FIXTURES / "past_dags.py").read_text())
        self.out, self.broken, self.db = tmp / "ran.jsonl", tmp / "broken", tmp / "state" / "dag_runs.db"
        self.broken.touch()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.config = write_config(tmp / "dags.toml", {
            "daemon": {"state_dir": "state", "shutdown_grace": "3s"},
            "admin": {"listen": f"127.0.0.1:{self.port}", "token": TOKEN}, **({"alert": alert} if alert else {})})
        start = int(time.time()) - 4  # two runs, both due at once: start and start + 1s
        self.env = {"RTSTREAM_PAST_START": str(start), "RTSTREAM_PAST_END": str(start + 1),
                    "RTSTREAM_PAST_OUT": str(self.out), "RTSTREAM_PAST_BROKEN": str(self.broken)}
        self.run_ids = [f"scheduled__{datetime.fromtimestamp(start + k, tz=UTC).isoformat()}" for k in (0, 1)]

    def daemon(self) -> Daemon:
        return Daemon(self.config, self.tmp, "--dags", str(self.tmp / "dags"), env=self.env)

    def runs(self, dag_id: str) -> list[str]:
        """The states of the two runs, in logical-date order."""
        if not self.db.exists():
            return []
        try:
            with contextlib.closing(sqlite3.connect(self.db, timeout=10)) as db:
                rows = dict(db.execute("SELECT run_id, state FROM dag_run WHERE dag_id = ?", (dag_id,)).fetchall())
        except sqlite3.OperationalError:
            return []
        return [rows.get(r, "") for r in self.run_ids]

    def lines(self, **match: Any) -> list[dict[str, Any]]:
        return [r for r in read_jsonl(self.out) if all(r[k] == v for k, v in match.items())]

    def index(self, **match: Any) -> int:
        rows = read_jsonl(self.out)
        found = [i for i, r in enumerate(rows) if all(r[k] == v for k, v in match.items())]
        assert len(found) == 1, (match, found)
        return found[0]

    def wait_held(self, daemon: Daemon) -> None:
        """Run 1 of each DAG failed, run 2 runs and its guarded task instance waits (said once each)."""
        wait_until(lambda: self.runs("past") == ["failed", "running"] and self.runs("wfd") == ["failed", "running"]
                   and f"past.held ({self.run_ids[1]}): waits: {HELD}" in daemon.stderr
                   and f"wfd.guarded ({self.run_ids[1]}): waits: {DOWN}" in daemon.stderr, 60,
                   what="run 2 of each DAG waiting for run 1")
        assert self.lines(task="first", run_id=self.run_ids[1], event="ok"), "run 2's other tasks go on"
        assert not self.lines(task="held", run_id=self.run_ids[1])
        assert not self.lines(task="guarded", run_id=self.run_ids[1])
        assert self.lines(task="guarded", run_id=self.run_ids[0], event="ok")  # its own success is not enough

    def clear_and_finish(self) -> None:
        self.broken.unlink()
        for dag_id, task_id in (("past", "held"), ("wfd", "down")):
            code, done = call(f"{self.base}/api/dags/{dag_id}/runs/{self.run_ids[0]}/clear", body={"task_id": task_id})
            assert code == 202, (code, done)
        wait_until(lambda: self.runs("past") == ["success"] * 2 and self.runs("wfd") == ["success"] * 2, 60,
                   what="both runs of both DAGs succeeded after the clear")
        r1, r2 = self.run_ids
        # the held task instances started only after the previous run's cleared try succeeded
        assert self.index(dag="past", task="held", run_id=r2, event="start") > \
            self.index(dag="past", task="held", run_id=r1, event="ok")
        assert self.index(dag="wfd", task="guarded", run_id=r2, event="start") > \
            self.index(dag="wfd", task="down", run_id=r1, event="ok")
        # each task instance's tries, exactly: the failed one and its cleared retry; the waiting ones once
        assert [r["try"] for r in self.lines(dag="past", task="held", run_id=r1, event="start")] == [1, 2]
        assert [r["try"] for r in self.lines(dag="past", task="held", run_id=r2, event="start")] == [1]
        assert [r["try"] for r in self.lines(dag="wfd", task="guarded", run_id=r2, event="start")] == [1]
        assert [r["try"] for r in self.lines(dag="wfd", task="down", run_id=r1, event="start")] == [1, 2]
        # the DAG's success callback: once per run, with that run's context
        for dag_id in ("past", "wfd"):
            assert sorted(r["run_id"] for r in self.lines(dag=dag_id, event="dag_success")) == [r1, r2]


def test_depends_on_past_and_wait_for_downstream_hold_until_a_clear_succeeds(tmp_path: Path) -> None:
    setup = PastSetup(tmp_path)
    with setup.daemon() as daemon:
        setup.wait_held(daemon)
        setup.clear_and_finish()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0


def test_a_waiting_run_still_waits_after_a_sigkill_and_then_goes_on(tmp_path: Path) -> None:
    setup = PastSetup(tmp_path)
    with setup.daemon() as first:
        setup.wait_held(first)
        first.kill()
    with setup.daemon() as second:
        # read from the store again: still waiting, said again by the new process
        setup.wait_held(second)
        assert "resuming run " + setup.run_ids[1] in second.stderr
        setup.clear_and_finish()
        second.signal(signal.SIGTERM)
        assert second.wait(30) == 0


def test_a_failed_dag_run_calls_the_alert_webhook(tmp_path: Path) -> None:
    """The config's [alert] is told of each failed DAG run, once, with what failed (the token never in it)."""
    receiver = AlertReceiver()
    with ThreadedServer(receiver.app) as server:
        setup = PastSetup(tmp_path, alert={"url": f"{server.url}/alert", "bearer_token": "al3rt-t0ken"})
        with setup.daemon() as daemon:
            setup.wait_held(daemon)
            wait_until(lambda: len(receiver.events) >= 2, 30, what="an alert per failed run")
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(30) == 0
    r1 = setup.run_ids[0]
    got = sorted((e["event"], e["dag_id"], e["run_id"], e["reason"], tuple(e["failed_tasks"]), e["error"])
                 for e in receiver.events)
    assert got == [("dag_run_failed", "past", r1, "task_failure", ("held",),
                    f"DAG past run {r1} failed: task_failure (failed tasks: held)"),
                   ("dag_run_failed", "wfd", r1, "task_failure", ("down",),
                    f"DAG wfd run {r1} failed: task_failure (failed tasks: down)")]
    assert all(e["logical_date"] == r1.split("__")[1] for e in receiver.events)
    assert "al3rt-t0ken" not in daemon.stderr


TIMED_OUT_DAG = '''
import json, os
from datetime import datetime, timedelta, timezone
from airflow import DAG
from airflow.operators.bash import BashOperator

START = datetime.fromtimestamp(float(os.environ["RTSTREAM_PAST_START"]), tz=timezone.utc)
OUT = os.environ["RTSTREAM_PAST_OUT"]

def noted(context):
    with open(OUT, "a") as fh:
        fh.write(json.dumps({"dag": context["dag"].dag_id, "run_id": context["run_id"], "event": "dag_failure",
                             "reason": context["reason"], "task": context["ti"].task_id}) + "\\n")

with DAG("too_long", start_date=START, end_date=START, schedule=timedelta(seconds=1), catchup=True,
         dagrun_timeout=timedelta(seconds=1), on_failure_callback=noted) as dag:
    BashOperator(task_id="slow", bash_command="sleep 30")
'''


def test_a_run_past_dagrun_timeout_calls_back_and_alerts_with_timed_out(tmp_path: Path) -> None:
    receiver = AlertReceiver()
    with ThreadedServer(receiver.app) as server:
        setup = PastSetup(tmp_path, alert={"url": f"{server.url}/alert"})
        (tmp_path / "dags" / "past_dags.py").unlink()
        (tmp_path / "dags" / "too_long.py").write_text(TIMED_OUT_DAG)
        with setup.daemon() as daemon:
            wait_until(lambda: setup.runs("too_long")[:1] == ["failed"] and receiver.events
                       and setup.lines(event="dag_failure"), 30, what="the run timed out, called back, alerted")
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(30) == 0
    r1 = setup.run_ids[0]
    assert setup.lines(event="dag_failure") == [{"dag": "too_long", "run_id": r1, "event": "dag_failure",
                                                 "reason": "timed_out", "task": "slow"}]
    assert [(e["dag_id"], e["run_id"], e["reason"], e["failed_tasks"]) for e in receiver.events] == [
        ("too_long", r1, "timed_out", [])]


ZOMBIE_DAG = '''
import json, os, time
from datetime import datetime, timedelta, timezone
from airflow import DAG
from airflow.operators.python import PythonOperator

START = datetime.fromtimestamp(float(os.environ["RTSTREAM_PAST_START"]), tz=timezone.utc)
OUT = os.environ["RTSTREAM_PAST_OUT"]
RELEASE = os.environ["RTSTREAM_PAST_BROKEN"] + ".release"

def line(context, event, **more):
    with open(OUT, "a") as fh:
        fh.write(json.dumps({"dag": context["dag"].dag_id, "task": context["ti"].task_id,
                             "run_id": context["run_id"], "try": context["ti"].try_number, "event": event,
                             **more}) + "\\n")

def hang(**context):
    line(context, "start")
    deadline = time.monotonic() + 60
    while not os.path.exists(RELEASE) and time.monotonic() < deadline:
        time.sleep(0.05)
    line(context, "ok")

def called(kind):
    def cb(context):
        line(context, kind, state=context["ti"].state, exception=str(context.get("exception")))
    return cb

with DAG("zombie", start_date=START, end_date=START, schedule=timedelta(seconds=1), catchup=True) as dag:
    PythonOperator(task_id="last_try", python_callable=hang, retries=0,
                   on_failure_callback=called("failure"), on_retry_callback=called("retry"))
    PythonOperator(task_id="has_retry", python_callable=hang, retries=1, retry_delay=timedelta(0),
                   on_failure_callback=called("failure"), on_retry_callback=called("retry"))
'''


def test_tries_interrupted_by_a_sigkill_call_their_failure_or_retry_callback_on_restart(tmp_path: Path) -> None:
    setup = PastSetup(tmp_path)
    (tmp_path / "dags" / "past_dags.py").unlink()
    (tmp_path / "dags" / "zombie.py").write_text(ZOMBIE_DAG)
    with setup.daemon() as first:
        wait_until(lambda: len(setup.lines(event="start")) == 2, 30, what="both tries running")
        first.kill()
    Path(str(setup.broken) + ".release").touch()
    with setup.daemon() as second:
        wait_until(lambda: setup.runs("zombie")[:1] == ["failed"], 30, what="the run finished")
        second.signal(signal.SIGTERM)
        assert second.wait(30) == 0
    r1 = setup.run_ids[0]
    calls = [(r["task"], r["try"], r["event"], r["state"]) for r in setup.lines(run_id=r1)
             if r["event"] in ("failure", "retry")]
    # Airflow's zombie handling: the last try fails (failure callback), one with a retry left is retried
    # (retry callback; its instance has no state here, where Airflow shows up_for_retry: docs/AIRFLOW.md)
    assert sorted(calls) == [("has_retry", 1, "retry", None), ("last_try", 1, "failure", "failed")]
    assert all("detected as a zombie" in r["exception"] for r in setup.lines(run_id=r1, event="failure"))
    assert [r["try"] for r in setup.lines(task="has_retry", event="ok")] == [2]
    assert setup.lines(task="last_try", event="ok") == []
