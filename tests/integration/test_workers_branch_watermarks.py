"""`workers = N` with a flow of several branches: /api/status gives each branch's watermark, the least
any worker has (as `watermark` is, compared as times, not as text); Tansu, the real daemon."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path
from typing import Any

from rtstream.testing.peers.ports import free_port
from tests.data import BASE_MS, make_events
from tests.integration.test_workers import FAST_CONSUMER, TOKEN, _admin
from tests.kafka_helpers import new_topics, produce
from tests.support import Daemon, wait_until, write_config


def _config(tmp_path: Path, bootstrap: str, topic: str, group: str, admin: int) -> Path:
    doc: dict[str, Any] = {
        "pipeline": {"name": "wbranches", "flow": "events >> per_min >> mins\nevents >> per_10s >> tens"},
        "window": {"size": "1m", "lateness": "1s", "idle_timeout": "1h"},
        "sources": {"events": {"type": "kafka", "bootstrap_servers": bootstrap, "topics": [topic], "group_id": group,
                               "start": "earliest", "consumer": FAST_CONSUMER}},
        "stages": {"per_min": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}},
                   "per_10s": {"type": "aggregate", "aggregates": {"n": "count()"},
                               "window": {"size": "10s", "lateness": "5s", "idle_timeout": "1h"}}},
        "sinks": {"mins": {"type": "file", "path": str(tmp_path / "mins"), "fsync": False},
                  "tens": {"type": "file", "path": str(tmp_path / "tens"), "fsync": False}},
        "state": {"checkpoint_interval": "1s"},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "200ms", "workers": 2,
                   "shutdown_grace": "10s"},
        "admin": {"listen": f"127.0.0.1:{admin}", "token": TOKEN},
    }
    return write_config(tmp_path / f"wb-{uuid.uuid4().hex[:6]}.toml", doc)


def test_each_branchs_watermark_is_the_least_over_the_workers(tmp_path, kafka):
    topic, _, group = new_topics(kafka.bootstrap, 2)
    # partition 0 ends at 00:03:00 sharp, partition 1 half a second later: the least is partition 0's, and
    # as text "…:55.500Z" sorts before "…:55Z"
    for p, last in ((0, BASE_MS + 180_000), (1, BASE_MS + 180_500)):
        events = [*make_events(200, span_s=120, seed=30 + p), {"user_id": "last", "ts": last, "amount": 0}]
        asyncio.run(produce(kafka.bootstrap, topic, events, partition=p))
    port = free_port()
    want = [{"branch": "per_min", "watermark": "2026-01-01T00:02:59Z", "lateness_s": 1.0},
            {"branch": "per_10s", "watermark": "2026-01-01T00:02:55Z", "lateness_s": 5.0}]
    with Daemon(_config(tmp_path, kafka.bootstrap, topic, group, port), tmp_path) as d:
        st = wait_until(lambda: (s := _admin(port, "/api/status")) and len(s.get("workers", [])) == 2
                        and all(w["ready"] for w in s["workers"]) and s.get("records_in") == 402
                        and s.get("watermarks") == want and s, 90, what="both branches' watermarks over two workers")
        assert st["watermark"] == "2026-01-01T00:02:55Z"  # the least of them, as a time
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
