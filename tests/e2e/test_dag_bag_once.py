"""The DAG files a `dag` sink names are imported once per start: the config's check of the sink and the
daemon share one DagBag, a SIGHUP reload checks against it, and several pipelines share it too."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import orjson
import pytest

from tests.support import Daemon, wait_until, write_config

pytestmark = pytest.mark.timeout(120)
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "dag_bag_once" / "count_me.py"


def _pipeline(name: str) -> dict:
    return {"flow": "gen >> to_dag", "window": {"size": "1m"},
            "sources": {"gen": {"type": "generator", "rate": 1}},
            "sinks": {"to_dag": {"type": "dag", "dag": "count_me"}}}


def _setup(tmp: Path) -> tuple[Path, dict[str, str]]:
    (tmp / "dags").mkdir()
    shutil.copy(FIXTURE, tmp / "dags" / "count_me.py")
    return tmp / "imports.txt", {"IMPORTS_OUT": str(tmp / "imports.txt")}


def _imports(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_one_pipeline_and_its_reload_import_the_dag_files_once(tmp_path):
    out, env = _setup(tmp_path)
    p = _pipeline("p")
    config = write_config(tmp_path / "one.toml", {
        "pipeline": {"name": "p", "flow": p["flow"]}, "window": p["window"], "sources": p["sources"],
        "sinks": p["sinks"], "dags": {"path": "dags"}, "daemon": {"state_dir": "state", "shutdown_grace": "5s"}})
    with Daemon(config, tmp_path, env=env) as d:
        wait_until(lambda: "pipeline p running" in d.stderr, 30, what="the pipeline running")
        d.signal(signal.SIGHUP)
        wait_until(lambda: "reload: nothing changed" in d.stderr, 30, what="the reload")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr
    assert _imports(out) == 1, d.stderr


def test_several_pipelines_share_one_import(tmp_path):
    out, env = _setup(tmp_path)
    config = write_config(tmp_path / "many.toml", {
        "dags": {"path": "dags"}, "daemon": {"state_dir": "state", "shutdown_grace": "5s", "log_format": "json"},
        "pipelines": {"a": _pipeline("a"), "b": _pipeline("b")}})
    with Daemon(config, tmp_path, env=env) as d:
        wait_until(lambda: "pipeline a running" in d.stderr and "pipeline b running" in d.stderr, 30,
                   what="both pipelines running")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr
    assert _imports(out) == 1, d.stderr
    # JSON lines name their pipeline in "pipeline" (the daemon's own lines: "rtstream")
    lines = [orjson.loads(line) for line in d.stderr.splitlines()]
    running = {x["pipeline"]: x["msg"] for x in lines if x["msg"].startswith("pipeline ") and "running" in x["msg"]}
    assert running == {"a": "pipeline a running: gen >> to_dag", "b": "pipeline b running: gen >> to_dag"}, running
    assert {x["pipeline"] for x in lines} == {"a", "b", "rtstream"}
