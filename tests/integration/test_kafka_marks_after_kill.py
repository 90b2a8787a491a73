"""A SIGKILL the moment the broker has acknowledged a commit (or a transaction with offsets) loses
no mark: the restart skips the out-of-order records of a window already written instead of writing
that window again with only them (Tansu drops commit metadata, so the marks come from this host's
copy under state_dir, rtstream/sources/kafka/host_marks.py). The kill is placed by a shim
(tests/shims/kill_after_commit), so the interleaving is the same every run."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

from tests.data import BASE_MS
from tests.integration.test_kafka import committed
from tests.kafka_helpers import QUICK_STATIC, new_topics, produce, read_all
from tests.support import Daemon, run_cli, window_files, write_config

SHIMS = Path(__file__).resolve().parent.parent / "shims"
MIN = 60_000


def shim_env(*dirs: Path, **extra: str) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([*map(str, dirs), os.environ.get("PYTHONPATH", "")]), **extra}


def events() -> list[dict[str, Any]]:
    """One partition. Window 00:00-00:05 is written once 00:06 is seen; the first record of 00:05
    (offset 2, where the commit stops) is followed by b's straggler of 00:00 (offset 3)."""
    at = [("a", 10_000, 1.0), ("b", MIN, 2.0), ("a", 5 * MIN + 1000, 3.0), ("b", 5 * MIN - 1000, 4.0),
          ("a", 5 * MIN + 20_000, 5.0), ("a", 5 * MIN + 40_000, 6.0), ("a", 6 * MIN, 7.0), ("a", 7 * MIN, 8.0)]
    return [{"user_id": k, "ts": BASE_MS + t, "amount": v} for k, t, v in at]


def config(tmp_path: Path, bootstrap: str, topic: str, group: str, sink: dict[str, Any] | None = None) -> Path:
    doc: dict[str, Any] = {
        "pipeline": {"name": "marks", "flow": "events >> per_user >> out"},
        "window": {"size": "5m", "lateness": "10s"},
        "sources": {"events": {"type": "kafka", "bootstrap_servers": bootstrap, "topics": [topic], "group_id": group,
                               "assignment": "static", "start": "committed", "stop_at_end": False,
                               "consumer": QUICK_STATIC}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id",
                                "aggregates": {"events": "count()", "spent": "sum(amount)"}}},
        "sinks": {"out": sink or {"type": "file", "path": str(tmp_path / "out"), "fsync": False}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms", "shutdown_grace": "10s"},
    }
    return write_config(tmp_path / f"marks-{uuid.uuid4().hex[:6]}.toml", doc)


def test_a_kill_right_after_the_broker_acknowledged_a_commit_keeps_its_mark(tmp_path, kafka):
    topic, _, group = new_topics(kafka.bootstrap, 1)
    asyncio.run(produce(kafka.bootstrap, topic, events()))
    cfg = config(tmp_path, kafka.bootstrap, topic, group)
    with Daemon(cfg, tmp_path, env=shim_env(SHIMS / "kill_after_commit")) as d:
        assert d.wait(120) == -9, d.stderr[-3000:]  # killed by the shim, after the broker had the commit
    assert asyncio.run(committed(kafka.bootstrap, group, topic, 1)) == {0: 2}  # the first record of 00:05
    res = run_cli("run", "-c", str(cfg), "--set", "sources.events.stop_at_end=true", timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "all sources finished: 6 records read" in res.stderr, res.stderr[-3000:]
    rows = {(r["window_start"], r["user_id"]): (r["events"], r["spent"])
            for rs in window_files(tmp_path / "out").values() for r in rs}
    # before the fix: ("2026-01-01T00:00:00Z", "b") was (1, 4.0), written again from the straggler alone
    assert rows == {("2026-01-01T00:00:00Z", "a"): (1, 1.0), ("2026-01-01T00:00:00Z", "b"): (2, 6.0),
                    ("2026-01-01T00:05:00Z", "a"): (5, 29.0)}
    dead = tmp_path / "dead.jsonl"
    assert not dead.exists() or not dead.read_text().strip()  # skipped as counted, not dead-lettered as late


def test_a_kill_right_after_a_transaction_with_offsets_keeps_its_mark(tmp_path, kafka):
    topic, out, group = new_topics(kafka.bootstrap, 1, 1)
    asyncio.run(produce(kafka.bootstrap, topic, events()))
    sink = {"type": "kafka", "bootstrap_servers": kafka.bootstrap, "topic": out, "acks": "all",
            "exactly_once": True, "transaction_timeout": "8s"}  # the restart waits it out on Tansu
    cfg = config(tmp_path, kafka.bootstrap, topic, group, sink)
    env = shim_env(SHIMS / "kill_after_commit", SHIMS, RTSTREAM_KILL_AFTER_COMMIT="transaction")
    with Daemon(cfg, tmp_path, env=env) as d:
        assert d.wait(120) == -9, d.stderr[-3000:]
    assert asyncio.run(committed(kafka.bootstrap, group, topic, 1)) == {0: 2}
    res = run_cli("run", "-c", str(cfg), "--set", "sources.events.stop_at_end=true", timeout=120,
                  env=shim_env(SHIMS))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "all sources finished: 6 records read" in res.stderr, res.stderr[-3000:]
    last = {key: (v["events"], v["spent"]) for key, v in asyncio.run(read_all(kafka.bootstrap, out, expect=3))}
    # before the fix the restart sent 00:00|b again as (1, 4.0), from the straggler alone
    assert last == {b"2026-01-01T00:00:00Z|a": (1, 1.0), b"2026-01-01T00:00:00Z|b": (2, 6.0),
                    b"2026-01-01T00:05:00Z|a": (5, 29.0)}
