"""Backfills give the same windows as a live run over the same data, and leave the group's offsets alone."""

from __future__ import annotations

import asyncio
import re
import uuid

from rtstream.testing.peers.tansu import create_topic
from tests.data import BASE_MS, make_events, write_lines
from tests.integration.test_kafka import committed
from tests.kafka_helpers import produce
from tests.reference import iso
from tests.support import run_cli, window_files, write_config


def config(tmp_path, source, out, name):
    doc = {
        "pipeline": {"name": "bf", "flow": "events >> per_user >> out"},
        "window": {"size": "5m", "lateness": "10s"},
        "sources": {"events": source},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id",
                                "aggregates": {"events": "count()", "spent": "sum(amount)"}}},
        "sinks": {"out": {"type": "file", "path": str(out)}},
        "daemon": {"state_dir": str(tmp_path / f"state-{name}")},
    }
    return write_config(tmp_path / f"{name}.toml", doc)


def in_range(files, lo, hi):
    return {k: v for k, v in files.items() if iso(lo).replace(":", "-") <= k[:20] < iso(hi).replace(":", "-")}


def test_kafka_backfill_equals_the_live_run_and_commits_nothing(tmp_path, kafka):
    topic, group = f"bf-{uuid.uuid4().hex[:8]}", f"grp-{uuid.uuid4().hex[:8]}"
    events = make_events(6000, span_s=3600, seed=51)
    asyncio.run(create_topic(kafka.bootstrap, topic, 3))
    asyncio.run(produce(kafka.bootstrap, topic, events))
    source = {"type": "kafka", "bootstrap_servers": kafka.bootstrap, "topics": [topic], "group_id": group,
              "consumer": {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300, "fetch_max_wait_ms": 10}}
    live = config(tmp_path, {**source, "stop_at_end": True, "group_id": group + "-live"}, tmp_path / "live", "live")
    assert run_cli("run", "-c", str(live)).returncode == 0
    bf = config(tmp_path, source, tmp_path / "bf", "bf")
    res = run_cli("backfill", "-c", str(bf), "--from", "2026-01-01T00:12:00Z", "--to", "2026-01-01T00:31:00Z")
    assert res.returncode == 0, res.stderr
    # the range widens to whole windows: 00:10 .. 00:35
    want = in_range(window_files(tmp_path / "live"), BASE_MS + 600_000, BASE_MS + 2_100_000)
    assert len(want) == 5
    assert window_files(tmp_path / "bf") == want, res.stderr[-3000:] + res.stdout
    assert re.search(r"windows written\s+5\n", res.stdout) and re.search(r"records read\s+6,000", res.stdout)
    assert asyncio.run(committed(kafka.bootstrap, group, topic, 3)) == {0: None, 1: None, 2: None}


def test_file_backfill_equals_the_live_run(tmp_path):
    events = make_events(4000, span_s=1800, seed=52)
    write_lines(tmp_path / "in.jsonl", events)
    source = {"type": "file", "path": str(tmp_path / "in.jsonl"), "follow": True}
    live = config(tmp_path, {**source, "follow": False}, tmp_path / "live", "live")
    assert run_cli("run", "-c", str(live)).returncode == 0
    bf = config(tmp_path, source, tmp_path / "bf", "bf")
    res = run_cli("backfill", "-c", str(bf), "--from", str(BASE_MS // 1000), "--to", "2026-01-01T00:15:00Z")
    assert res.returncode == 0, res.stderr
    want = in_range(window_files(tmp_path / "live"), BASE_MS, BASE_MS + 900_000)
    assert len(want) == 3 and window_files(tmp_path / "bf") == want


def test_backfill_refuses_sources_without_history(tmp_path):
    cfg = config(tmp_path, {"type": "http_ingest", "listen": "127.0.0.1:1"}, tmp_path / "o", "x")
    res = run_cli("backfill", "-c", str(cfg), "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-02T00:00:00Z")
    assert res.returncode == 2 and "has no history to backfill from" in res.stderr
