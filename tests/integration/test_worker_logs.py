"""What `[daemon] workers = 2` prints (issue 28): every line a worker logs carries its worker id, in
text and in JSON; only the supervisor's admin server is announced as "admin server on ..." (the
workers' internal ports are not); a finite run does not announce when its first window closes.
The real `rtstream` process against the test broker."""

from __future__ import annotations

import asyncio
import re
import uuid

import orjson
import pytest

from rtstream.testing.peers.ports import free_port
from tests.data import make_events
from tests.kafka_helpers import new_topics, produce
from tests.support import run_cli, write_config

SUPERVISOR_LOGGERS = {"rtstream.run.workers", "rtstream.admin", "rtstream"}
FAST_CONSUMER = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 300, "fetch_max_wait_ms": 10}


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_each_worker_line_names_its_worker_and_only_the_real_admin_server_is_announced(tmp_path, kafka, log_format):
    topic, _, group = new_topics(kafka.bootstrap, 4)
    asyncio.run(produce(kafka.bootstrap, topic, make_events(2000, span_s=900, seed=5)))
    port = free_port()
    cfg = write_config(tmp_path / f"w-{uuid.uuid4().hex[:6]}.toml", {
        "pipeline": {"name": "wlogs", "flow": "events >> per_user >> out"},
        "window": {"size": "5m", "lateness": "1s", "idle_timeout": "2s"},
        "sources": {"events": {"type": "kafka", "bootstrap_servers": kafka.bootstrap, "topics": [topic],
                               "group_id": group, "start": "earliest", "stop_at_end": True,
                               "consumer": FAST_CONSUMER}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}}},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out"), "fsync": False}},
        "admin": {"listen": f"127.0.0.1:{port}", "token": "worker-logs-token-1234"},
        "daemon": {"state_dir": str(tmp_path / "state"), "workers": 2, "log_format": log_format,
                   "commit_interval": "200ms"},
    })
    res = run_cli("run", "-c", str(cfg), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    if log_format == "json":
        docs = [orjson.loads(line) for line in lines]
        parsed = [(d["logger"], d.get("worker"), d["msg"]) for d in docs]
    else:
        pattern = re.compile(r"^\S+ [A-Z]+ +(?:\[worker (\d+)\] )?([\w.]+): (.*)$")
        matches = [pattern.match(line) for line in lines]
        assert all(matches), [line for line, m in zip(lines, matches, strict=True) if not m]
        parsed = [(m.group(2), int(m.group(1)) if m.group(1) else None, m.group(3)) for m in matches if m]
    workers = [(logger, who, msg) for logger, who, msg in parsed if logger not in SUPERVISOR_LOGGERS]
    assert workers, "no worker logged anything"
    assert all(who in (0, 1) for _, who, _ in workers), [w for w in workers if w[1] not in (0, 1)]
    running = sorted(who for _, who, msg in workers if msg.startswith("pipeline wlogs running"))
    assert running == [0, 1]
    announced = [msg for _, _, msg in parsed if msg.startswith("admin server on")]
    assert announced == [f"admin server on http://127.0.0.1:{port} (status page, /healthz, /readyz, /metrics, "
                         "/api/runs)"]
    assert not any("first closes" in msg for _, _, msg in parsed)  # a finite run: its windows close as it reads
