"""Finite Kafka runs from a fresh group on batched input, repeated: every run exact.

This is the scenario that lost one fetched batch in 4 runs of 30 (the start-up race): a new group,
`start = "earliest"`, `stop_at_end = true`, 4 partitions loaded by an ordinary batching producer.
`make test` runs it twice; `make soak` runs it RTSTREAM_FINITE_RUNS times (default 50).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.data import make_events
from tests.kafka_helpers import new_topics, produce
from tests.reference import tumbling_truth
from tests.support import run_cli, write_config

RECORDS = 80_000
FAST_CONSUMER = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 300, "fetch_max_wait_ms": 10}


def _config(tmp_path: Path, bootstrap: str, topic: str, group: str) -> Path:
    out = tmp_path / "out"
    doc = {
        "pipeline": {"name": "finite", "flow": "events >> per_user >> results"},
        "window": {"size": "5m", "lateness": "10s", "idle_timeout": "2s"},
        "sources": {"events": {"type": "kafka", "bootstrap_servers": bootstrap, "topics": [topic], "group_id": group,
                               "start": "earliest", "stop_at_end": True, "consumer": FAST_CONSUMER}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id",
                                "aggregates": {"events": "count()", "spent": "sum(amount)"}}},
        "sinks": {"results": {"type": "file", "path": str(out), "fsync": False}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "200ms"},
    }
    return write_config(tmp_path / f"finite-{uuid.uuid4().hex[:6]}.toml", doc)


def _rows(folder: Path) -> dict[tuple[str, str], dict[str, Any]]:
    rows = {}
    for path in folder.glob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            row = orjson.loads(line)
            rows[(row["window_start"], row["user_id"])] = row
    return rows


def one_finite_run(tmp_path: Path, bootstrap: str, events: list[dict[str, Any]],
                   truth: dict[tuple[str, str], dict[str, Any]]) -> None:
    topic, _, group = new_topics(bootstrap, 4)
    asyncio.run(produce(bootstrap, topic, events))
    res = run_cli("run", "-c", str(_config(tmp_path, bootstrap, topic, group)), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"all sources finished: {len(events)} records read" in res.stderr, res.stderr[-3000:]
    got = _rows(tmp_path / "out")
    assert set(got) == set(truth), f"{len(set(truth) - set(got))} windows missing, {len(set(got) - set(truth))} extra"
    wrong = [k for k, want in truth.items()
             if got[k]["events"] != want["events"] or got[k]["spent"] != pytest.approx(want["spent"])]
    assert not wrong, f"{len(wrong)} windows wrong, e.g. {wrong[:3]}"


@pytest.fixture(scope="module")
def workload() -> tuple[list[dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
    events = make_events(RECORDS, span_s=3600, seed=11)
    return events, tumbling_truth(events, 300, "user_id")


@pytest.mark.parametrize("run", range(2))
def test_finite_run_from_a_fresh_group_is_exact(tmp_path, kafka, workload, run):
    one_finite_run(tmp_path, kafka.bootstrap, *workload)


@pytest.mark.soak
def test_many_finite_runs_are_all_exact(tmp_path, kafka, workload):
    runs = int(os.environ.get("RTSTREAM_FINITE_RUNS", "50"))
    failures: dict[int, str] = defaultdict(str)
    for n in range(runs):
        folder = tmp_path / f"run{n}"
        folder.mkdir()
        try:
            one_finite_run(folder, kafka.bootstrap, *workload)
        except AssertionError as exc:
            failures[n] = str(exc)[:500]
    print(f"finite Kafka runs: {runs - len(failures)} of {runs} exact, {RECORDS} records each")
    assert not failures, dict(failures)
