"""A start-up failure is one line naming the component (issue 28): an address in use for the admin
server or an http_ingest source, with and without `[daemon] workers = 2`, ends the real `rtstream
run` with exit 1 (the config is fine; the machine's state is not: a supervisor may retry), no
traceback, nothing left open ("Unclosed client session")."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.support import run_cli, write_config


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another process (here, this one) listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def config(tmp_path, port: int, case: str):
    source = {"type": "generator", "rate": 10, "count": 100}
    doc = {
        "pipeline": {"name": "taken", "flow": "events >> per_user >> out"},
        "window": {"size": "1m"},
        "sources": {"events": source},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}}},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out")}},
        "daemon": {"state_dir": str(tmp_path / "state")},
    }
    if case == "http_ingest":
        doc["sources"]["events"] = {"type": "http_ingest", "listen": f"127.0.0.1:{port}"}
    else:
        doc["admin"] = {"listen": f"127.0.0.1:{port}"}
    if case == "admin, workers = 2":
        # the supervisor's admin server starts before any worker: no broker is reached
        doc["sources"]["events"] = {"type": "kafka", "bootstrap_servers": "127.0.0.1:9", "topics": ["t"],
                                    "group_id": "g"}
        doc["daemon"]["workers"] = 2
    return write_config(tmp_path / "rt.toml", doc)


@pytest.mark.parametrize("case,component", [("admin", "admin"), ("admin, workers = 2", "admin"),
                                            ("http_ingest", "events")])
def test_an_address_in_use_is_one_line_naming_the_component(tmp_path, taken_port, case, component):
    res = run_cli("run", "-c", str(config(tmp_path, taken_port, case)), timeout=60)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 1, res.stderr
    assert len(lines) == 1, res.stderr
    assert lines[0].split(" ", 1)[1].startswith("ERROR   rtstream.")
    assert lines[0].split(": ", 1)[1] == (f"component {component} failed to start: cannot listen on 127.0.0.1:"
                                          f"{taken_port}: the address is already in use (another process listens there)")
    assert "Traceback" not in res.stderr and "Unclosed" not in res.stderr and res.stdout == ""


def test_http_ingest_with_workers_is_refused_as_a_config_problem(tmp_path, taken_port):
    cfg = config(tmp_path, taken_port, "http_ingest")
    res = run_cli("run", "-c", str(cfg), "--set", "daemon.workers=2", timeout=60)
    assert res.returncode == 2
    assert res.stderr.splitlines()[1].startswith("  daemon.workers: daemon.workers = 2 needs sources that a consumer "
                                                 "group or the supervisor splits")
