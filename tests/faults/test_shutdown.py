"""SIGTERM ends the daemon within shutdown_grace whatever its sinks do, commits nothing unwritten,
and a restart writes what was left."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from tests.data import BASE_MS, make_events, write_lines
from tests.http_peers import ThreadedServer
from tests.kafka_helpers import new_topics, produce
from tests.reference import tumbling_truth
from tests.support import Daemon, wait_until, write_config

GRACE_S = 4


class Receiver:
    """An HTTP receiver whose behaviour the test switches: fail (500), hang, or take the rows."""

    def __init__(self, mode: str):
        self.mode = mode
        self.requests = 0
        self.rows: list[dict] = []
        self.lock = threading.Lock()

    def app(self) -> web.Application:
        async def hook(request: web.Request) -> web.Response:
            body = await request.read()
            with self.lock:
                self.requests += 1
                mode = self.mode
            if mode == "hang":
                await asyncio.sleep(3600)
            if mode == "fail":
                return web.Response(status=500, text="down")
            with self.lock:
                self.rows.extend(orjson.loads(body))
            return web.Response(status=200)

        app = web.Application()
        app.router.add_post("/hook", hook)
        return app


def _config(tmp_path: Path, src: Path, url: str) -> Path:
    doc = {
        "pipeline": {"name": "grace", "flow": "tail >> per_user >> hook"},
        "window": {"size": "1m", "lateness": "1s", "idle_timeout": "1h"},
        "sources": {"tail": {"type": "file", "path": str(src), "follow": True, "poll_interval": "50ms"}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id",
                                "aggregates": {"events": "count()", "spent": "sum(amount)"}}},
        "sinks": {"hook": {"type": "http", "url": url, "retries": 1000, "retry_delay": "100ms",
                           "max_retry_delay": "200ms"}},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms", "shutdown_grace": f"{GRACE_S}s",
                   "flush_queue_size": 2},  # closed windows back up behind the stuck sink
    }
    return write_config(tmp_path / "grace.toml", doc)


def _committed(tmp_path: Path) -> int:
    pos = tmp_path / "state" / "positions" / "tail.json"
    return int(orjson.loads(pos.read_bytes())["position"]) if pos.exists() else 0


@pytest.mark.parametrize("mode", ["fail", "hang"])
def test_sigterm_with_a_stuck_sink_exits_within_the_grace_and_a_restart_writes_everything(tmp_path, mode):
    events = make_events(1200, span_s=1200, seed=5)  # twenty windows
    src = tmp_path / "in.jsonl"
    write_lines(src, [*events, {"user_id": "closer", "ts": BASE_MS + 3_600_000, "amount": 0.0}])
    receiver = Receiver(mode)
    with ThreadedServer(receiver.app) as server:
        cfg = _config(tmp_path, src, f"{server.url}/hook")
        with Daemon(cfg, tmp_path) as d:
            wait_until(lambda: receiver.requests >= 2 if mode == "fail" else receiver.requests >= 1, 30,
                       what="the sink to be failing")
            began = time.monotonic()
            d.signal(signal.SIGTERM)
            assert d.wait(GRACE_S + 10) == 0, d.stderr[-2000:]
            took = time.monotonic() - began
        assert took < GRACE_S + 2, f"exited {took:.1f}s after SIGTERM, grace {GRACE_S}s"
        assert "Traceback" not in d.stderr
        assert _committed(tmp_path) == 0  # nothing was written, so nothing may be committed
        with receiver.lock:
            receiver.mode, receiver.rows = "ok", []
        with Daemon(cfg, tmp_path) as d:
            truth = tumbling_truth(events, 60, "user_id")
            wait_until(lambda: len({(r["window_start"], r["user_id"]) for r in receiver.rows}) >= len(truth), 30,
                       what="every window after the restart")
            d.signal(signal.SIGTERM)
            assert d.wait(GRACE_S + 10) == 0
    got = {(r["window_start"], r["user_id"]): r for r in receiver.rows}
    assert set(got) == set(truth)
    assert all(got[k]["events"] == want["events"] for k, want in truth.items())


def test_sigterm_after_the_broker_is_gone_exits_within_the_grace(tmp_path, fresh_kafka):
    topic, _, group = new_topics(fresh_kafka.bootstrap, 2)
    asyncio.run(produce(fresh_kafka.bootstrap, topic, make_events(500, span_s=60, seed=6)))
    doc = {"pipeline": {"name": "gone", "flow": "events >> out"}, "window": {"size": "1m"},
           "sources": {"events": {"type": "kafka", "bootstrap_servers": fresh_kafka.bootstrap, "topics": [topic],
                                  "group_id": group, "consumer": {"session_timeout_ms": 6000,
                                                                  "heartbeat_interval_ms": 300}}},
           "sinks": {"out": {"type": "file", "path": str(tmp_path / "out")}},
           "daemon": {"state_dir": str(tmp_path / "state"), "shutdown_grace": f"{GRACE_S}s", "commit_interval": "1s"}}
    cfg = write_config(tmp_path / "gone.toml", doc)
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: "events: assigned" in d.stderr, 60, what="the partitions assigned")
        fresh_kafka.stop()  # commits, fetches and the consumer's close now wait on a broker that is gone
        wait_until(lambda: "Connect call failed" in d.stderr, 30, what="the broker gone")
        began = time.monotonic()
        d.signal(signal.SIGTERM)
        assert d.wait(GRACE_S + 10) == 0, d.stderr[-3000:]
        took = time.monotonic() - began
    assert took < GRACE_S + 1, f"exited {took:.1f}s after SIGTERM, grace {GRACE_S}s"
    assert "Traceback" not in d.stderr
