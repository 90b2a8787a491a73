"""Two Kafka sources (each its own consumer group, so two commit requests) feeding one aggregate: a
SIGKILL the moment the broker has acknowledged the first source's commit that carries a mark
(tests/shims/kill_after_commit), before the second source commits, must not rewrite a window. The
second source restarts from its older offset and takes the mark this process journaled for it before
the round (rtstream/runtime/written_marks.py). The finite restart's output is compared with a
computation over every record."""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_multisource_kill import MIN, SOURCES, records, reference, sink_rows
from tests.integration.test_kafka_marks_after_kill import SHIMS, shim_env
from tests.kafka_helpers import QUICK_STATIC, new_topics, produce
from tests.support import LOOPS, Daemon, run_cli, write_config


def config(tmp_path: Path, bootstrap: str, topics: dict[str, str], groups: dict[str, str]) -> Path:
    doc: dict[str, Any] = {
        "pipeline": {"name": "two-topics", "flow": "[left, right] >> per_user >> out"},
        "window": {"size": "5m", "lateness": "30s"},
        "sources": {name: {"type": "kafka", "bootstrap_servers": bootstrap, "topics": [topics[name]],
                           "group_id": groups[name], "assignment": "static", "start": "committed",
                           "stop_at_end": False, "consumer": QUICK_STATIC} for name in SOURCES},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id",
                                "aggregates": {"events": "count()", "spent": "sum(amount)"}}},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out"), "fsync": False}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms", "shutdown_grace": "10s"},
    }
    return write_config(tmp_path / f"two-{uuid.uuid4().hex[:6]}.toml", doc)


@pytest.mark.parametrize("seed", range(LOOPS))
def test_a_kill_between_two_kafka_sources_commits_rewrites_no_window(tmp_path: Path, kafka: Any, seed: int) -> None:
    rnd = random.Random(f"kafka-two:{seed}")
    topics, groups = {}, {}
    for name in SOURCES:
        topics[name], _, groups[name] = new_topics(kafka.bootstrap, 1)
    recs = {name: records(rnd, 0, 15) for name in SOURCES}
    for name in SOURCES:
        asyncio.run(produce(kafka.bootstrap, topics[name], recs[name]))
    cfg = config(tmp_path, kafka.bootstrap, topics, groups)
    with Daemon(cfg, tmp_path, env=shim_env(SHIMS / "kill_after_commit")) as d:
        assert d.wait(120) == -9, d.stderr[-3000:]  # killed by the shim, after one source's commit
    assert sink_rows(tmp_path / "out")  # windows were written, whole, before the kill
    stops = [a for name in SOURCES for a in ("--set", f"sources.{name}.stop_at_end=true")]
    res = run_cli("run", "-c", str(cfg), *stops, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    want = reference([r for name in SOURCES for r in recs[name]], 5 * MIN, 5 * MIN, 2**62)
    got = sink_rows(tmp_path / "out")
    wrong = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
    assert not wrong, f"{len(wrong)} of {len(want)} rows differ (got, want): {sorted(wrong.items())[:8]}"
    assert set(got) == set(want)
    dead = tmp_path / "dead.jsonl"
    assert not dead.exists() or not dead.read_text().strip(), dead.read_text()[:2000]
