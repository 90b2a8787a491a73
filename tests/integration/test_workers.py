"""`[daemon] workers = N`: worker processes in one consumer group under one supervisor."""

from __future__ import annotations

import asyncio
import os
import signal
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from rtstream.testing.peers.ports import free_port
from tests.data import BASE_MS, make_events, write_lines
from tests.kafka_helpers import new_topics, produce
from tests.reference import tumbling_truth
from tests.support import Daemon, run_cli, wait_until, window_files, write_config

TOKEN = "workers-admin-token-1234"
FAST_CONSUMER = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 300, "fetch_max_wait_ms": 10}


def _config(tmp_path: Path, bootstrap: str, topic: str, group: str, *, finite: bool, admin: int | None = None) -> Path:
    doc: dict[str, Any] = {
        "pipeline": {"name": "workers", "flow": "events >> per_user >> out"},
        "window": {"size": "5m", "lateness": "1s", "idle_timeout": "2s"},
        "sources": {"events": {"type": "kafka", "bootstrap_servers": bootstrap, "topics": [topic], "group_id": group,
                               "start": "earliest", "stop_at_end": finite, "consumer": FAST_CONSUMER}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id",
                                "aggregates": {"events": "count()", "spent": "sum(amount)"}}},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out"), "fsync": False}},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "200ms", "workers": 2,
                   "shutdown_grace": "10s"},
    }
    if admin is not None:
        doc["admin"] = {"listen": f"127.0.0.1:{admin}", "token": TOKEN}
    return write_config(tmp_path / f"workers-{uuid.uuid4().hex[:6]}.toml", doc)


def _got(tmp_path: Path) -> dict[tuple[str, str], tuple[int, float]]:
    return {(r["window_start"], r["user_id"]): (r["events"], r["spent"])
            for rows in window_files(tmp_path / "out").values() for r in rows}


def _exact(got: dict[Any, Any], truth: dict[Any, Any]) -> bool:
    return set(got) == set(truth) and all(
        got[k][0] == t["events"] and abs(got[k][1] - t["spent"]) < 1e-6 for k, t in truth.items())


def _admin(port: int, path: str) -> Any:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=3) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    except OSError:
        return None
    return body if path == "/metrics" else orjson.loads(body)


def test_a_finite_run_with_two_workers_equals_the_reference(tmp_path, kafka):
    topic, _, group = new_topics(kafka.bootstrap, 4)
    events = make_events(12_000, span_s=3600, seed=21)
    asyncio.run(produce(kafka.bootstrap, topic, events))
    res = run_cli("run", "-c", str(_config(tmp_path, kafka.bootstrap, topic, group, finite=True)), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "worker 0 started" in res.stderr and "worker 1 started" in res.stderr
    assert _exact(_got(tmp_path), tumbling_truth(events, 300, "user_id"))


def test_a_killed_worker_is_restarted_and_one_admin_server_shows_them_all(tmp_path, kafka):
    topic, _, group = new_topics(kafka.bootstrap, 4)
    events = make_events(6000, span_s=1800, seed=22)
    asyncio.run(produce(kafka.bootstrap, topic, events))
    port = free_port()
    truth = tumbling_truth(events, 300, "user_id")
    with Daemon(_config(tmp_path, kafka.bootstrap, topic, group, finite=False, admin=port), tmp_path) as d:
        st = wait_until(lambda: (s := _admin(port, "/api/status")) and len(s.get("workers", [])) == 2
                        and all(w["ready"] for w in s["workers"]) and s, 60, what="two ready workers")
        victim = st["workers"][1]["pid"]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: (s := _admin(port, "/api/status")) and s["workers"][1]["restarts"] == 1
                   and s["workers"][1]["pid"] != victim, 30, what="the worker restarted")
        assert "worker 1 exited with -9; restarting it" in d.stderr
        closer = {"user_id": "closer", "ts": BASE_MS + 7_200_000, "amount": 0.0}
        asyncio.run(produce(kafka.bootstrap, topic, [closer] * 8))  # on every partition, closing every window
        wait_until(lambda: set(truth) <= set(_got(tmp_path)), 60, what="every window")
        wait_until(lambda: (s := _admin(port, "/api/status")) and s["records_in"] >= len(events), 30,
                   what="the summed records")
        metrics = _admin(port, "/metrics").decode()
        assert 'worker="0"' in metrics and 'worker="1"' in metrics
        # the restarted worker joins the group again: ready once the rebalance is done
        wait_until(lambda: _admin(port, "/readyz") == {"ready": True}, 60, what="every worker ready")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    got = {k: v for k, v in _got(tmp_path).items() if k[1] != "closer"}
    assert _exact(got, truth)  # at-least-once across the kill, exact at the idempotent file sink


@pytest.mark.parametrize("source", [{"type": "file", "path": "in.jsonl"}, {"type": "generator", "rate": 10}])
def test_workers_refuse_sources_a_group_cannot_split(tmp_path, source):
    write_lines(tmp_path / "in.jsonl", [])
    doc = {"pipeline": {"name": "w", "flow": "src >> out"}, "window": {"size": "1m"}, "sources": {"src": source},
           "sinks": {"out": {"type": "stdout"}}, "daemon": {"state_dir": str(tmp_path / "state"), "workers": 3}}
    cfg = write_config(tmp_path / "w.toml", doc)
    for command in ("validate", "run"):
        res = run_cli(command, "-c", str(cfg))
        assert res.returncode == 2, res.stderr
        assert "daemon.workers" in res.stderr and "src (" in res.stderr and "Traceback" not in res.stderr


def test_workers_do_not_outlive_a_supervisor_killed_hard(tmp_path, kafka):
    topic, _, group = new_topics(kafka.bootstrap, 2)
    port = free_port()
    with Daemon(_config(tmp_path, kafka.bootstrap, topic, group, finite=False, admin=port), tmp_path) as d:
        st = wait_until(lambda: (s := _admin(port, "/api/status")) and len(s.get("workers", [])) == 2
                        and all(w["pid"] for w in s["workers"]) and s, 60, what="two workers")
        pids = [w["pid"] for w in st["workers"]]
        d.kill()  # SIGKILL: the supervisor cannot pass anything on

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{pid}/stat") as fh:  # a zombie waiting for its (dead) parent's reaper is gone too
            return fh.read().split(") ")[1].startswith("Z")

    wait_until(lambda: all(gone(p) for p in pids), 30, what="the workers to exit with their supervisor")
