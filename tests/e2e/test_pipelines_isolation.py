"""Isolation in a daemon of several pipelines: one that cannot start (its listen address is taken) is
started again on its own until it can; one whose user code calls sys.exit halts and retries; the third
writes its windows all along; the daemon never ends before its SIGTERM, then exits 0."""

from __future__ import annotations

import signal
import socket
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from rtstream.testing.peers.ports import free_port
from tests.support import Daemon, wait_until, write_config

pytestmark = pytest.mark.timeout(180)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pipelines"


def _status(admin: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/api/status", timeout=5) as resp:
            return orjson.loads(resp.read())  # type: ignore[no-any-return]
    except OSError:
        return {}


def _row(admin: int, name: str) -> dict:
    return next((p for p in _status(admin).get("pipelines", []) if p["name"] == name), {})


def test_a_pipeline_that_cannot_start_and_one_that_exits_leave_the_third_running(tmp_path):
    taken, admin = free_port(), free_port()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", taken))
    holder.listen()
    gen = {"type": "generator", "rate": 50}
    window = {"size": "1s", "lateness": "100ms", "idle_timeout": "1s"}
    config = write_config(tmp_path / "many.toml", {
        "daemon": {"state_dir": "state", "shutdown_grace": "5s"},
        "admin": {"listen": f"127.0.0.1:{admin}"},
        "defaults": {"retry_delay": "100ms", "max_retry_delay": "300ms"},
        "pipelines": {
            "ingest": {"flow": "http >> out", "window": window,
                       "sources": {"http": {"type": "http_ingest", "listen": f"127.0.0.1:{taken}"}},
                       "sinks": {"out": {"type": "file", "path": "out/ingest"}}},
            "quitter": {"flow": "gen >> out", "window": window, "python_path": [str(FIXTURES)],
                        "sources": {"gen": gen}, "sinks": {"out": {"type": "python", "call": "quitter:quit_sink"}}},
            "steady": {"flow": "gen >> out", "window": window, "sources": {"gen": gen},
                       "sinks": {"out": {"type": "file", "path": "out/steady"}}},
        }})
    steady = tmp_path / "out" / "steady"
    with Daemon(config, tmp_path) as d:
        try:
            ingest = wait_until(lambda: (r := _row(admin, "ingest")).get("restarts", 0) >= 2 and r, 60,
                                what="the ingest pipeline started again at least twice")
            assert ingest["state"] in ("restarting", "starting", "running"), ingest
            assert str(taken) in (ingest["last_error"] or ""), ingest
            quitter = wait_until(lambda: (r := _row(admin, "quitter")).get("state") == "halted" and r, 60,
                                 what="quitter halted")
            assert "raised SystemExit(3), which cannot end the daemon" in quitter["last_error"], quitter
            before = len(list(steady.glob("*.jsonl")))
            wait_until(lambda: len(list(steady.glob("*.jsonl"))) >= before + 2, 30, what="steady writing on")
            assert _row(admin, "steady")["state"] == "running"
            assert d.proc.poll() is None
        finally:
            holder.close()  # the address is free: the next start of ingest takes it
        wait_until(lambda: _row(admin, "ingest").get("state") == "running", 60, what="ingest running")
        req = urllib.request.Request(f"http://127.0.0.1:{taken}/ingest", data=b'{"user_id": "u1", "ts": 1}',
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status in (200, 202)
        d.signal(signal.SIGHUP)  # not applied to several pipelines: said, and everything runs on
        wait_until(lambda: "reload refused: a config of several pipelines is applied by a restart" in d.stderr, 30,
                   what="the reload refused")
        assert d.proc.poll() is None and _row(admin, "steady")["state"] == "running"
        d.signal(signal.SIGTERM)  # quitter is halted still: its window stays unwritten, the stop keeps the grace
        began = time.monotonic()
        assert d.wait(30) == 0, d.stderr
        assert time.monotonic() - began < 5 + 2, "the stop took longer than the 5s grace"
    assert "[ingest] " in d.stderr and "starting it again in" in d.stderr
    assert "Traceback" not in d.stderr, d.stderr
