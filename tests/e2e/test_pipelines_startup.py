"""Starting a daemon of several pipelines: an admin address in use or an unreadable DAG path is one line and
exit 2; a SIGTERM at any moment of the start-up is a clean stop, exit 0 (looped)."""

from __future__ import annotations

import random
import signal
import socket
import time
from pathlib import Path

import pytest

from rtstream.testing.peers.ports import free_port
from tests.support import LOOPS, Daemon, wait_until, write_config

pytestmark = pytest.mark.timeout(300)


DAG = """from datetime import datetime
from airflow import DAG
from airflow.operators.empty import EmptyOperator

with DAG("hourly", start_date=datetime(2026, 1, 1), schedule="@hourly", catchup=False):
    EmptyOperator(task_id="nothing")
"""


def _config(tmp: Path, admin: int, dags: str = "dags") -> Path:
    (tmp / "dags").mkdir(exist_ok=True)
    (tmp / "dags" / "hourly.py").write_text(DAG)
    pipe = {"flow": "gen >> out", "window": {"size": "1s"}, "sources": {"gen": {"type": "generator", "rate": 100}},
            "sinks": {"out": {"type": "file", "path": "out"}}}
    return write_config(tmp / "many.toml", {
        "daemon": {"state_dir": "state", "shutdown_grace": "5s"}, "admin": {"listen": f"127.0.0.1:{admin}"},
        "dags": {"path": dags},
        "pipelines": {"a": pipe, "b": {**pipe, "sinks": {"out": {"type": "file", "path": "out_b"}}}}})


def test_an_admin_address_in_use_and_a_missing_dag_path_are_one_line(tmp_path):
    admin = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", admin))
        holder.listen()
        with Daemon(_config(tmp_path, admin), tmp_path) as d:
            assert d.wait(30) == 2
        assert d.stderr.strip().splitlines()[-1].startswith(f"rtstream: cannot start: admin.listen: 127.0.0.1:{admin}")
    with Daemon(_config(tmp_path, free_port(), dags="nowhere"), tmp_path) as d:
        assert d.wait(30) == 2
    assert "rtstream: cannot start: dags.path:" in d.stderr and "Traceback" not in d.stderr, d.stderr


def _catches_sigterm(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


@pytest.mark.parametrize("run", range(LOOPS))
def test_a_sigterm_during_start_up_is_a_clean_stop(tmp_path, run):
    with Daemon(_config(tmp_path, free_port()), tmp_path) as d:
        # from the moment the process catches SIGTERM (`rtstream run`'s first step; before it, the Python
        # interpreter is still starting and any Python program dies of the signal)
        wait_until(lambda: _catches_sigterm(d.proc.pid), 30, interval=0.005, what="SIGTERM caught")
        time.sleep(random.uniform(0.0, 1.5))  # the random moment of the signal; nothing to wait on
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr
    assert "Traceback" not in d.stderr, d.stderr


def test_a_folder_of_pipeline_files_runs_until_each_has_ended(tmp_path):
    """`pipelines = "FOLDER"` without DAGs: each file a pipeline named after it, its paths beside its file,
    its state in STATE_DIR/pipelines/NAME; the daemon ends (exit 0) once every pipeline's input ended."""
    folder = tmp_path / "conf" / "pipes"
    folder.mkdir(parents=True)
    for name, count in (("small", 300), ("large", 1200)):
        write_config(folder / f"{name}.toml", {
            "window": {"size": "1m", "idle_timeout": "1s"},
            "sources": {"gen": {"type": "generator", "count": count, "realtime": False,
                                "start": "2026-01-01T00:00:00Z", "rate": 10}},
            "sinks": {"out": {"type": "file", "path": f"out/{name}"}}})
        text = (folder / f"{name}.toml").read_text()
        (folder / f"{name}.toml").write_text('flow = "gen >> out"\n' + text)
    config = tmp_path / "conf" / "many.toml"
    config.write_text('pipelines = "pipes"\n[daemon]\nstate_dir = "state"\n')
    with Daemon(config, tmp_path) as d:
        assert d.wait(60) == 0, d.stderr
    for name, count in (("small", 300), ("large", 1200)):
        rows = [line for p in (folder / "out" / name).glob("*.jsonl") for line in p.read_text().splitlines()]
        assert len(rows) == count, (name, len(rows))  # no aggregate: a row per record
        assert (tmp_path / "conf" / "state" / "pipelines" / name / "runs.db").exists()
    assert "pipeline small finished: its input ended" in d.stderr and "pipeline large finished" in d.stderr
