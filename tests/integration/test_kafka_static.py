"""`assignment = "static"`: Kafka partitions read without joining the group, against a real broker
(Tansu) and the real daemon process; commits still go to the group."""

from __future__ import annotations

import asyncio
import re
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from rtstream.testing.peers.tansu import create_topic
from tests.data import BASE_MS, make_events
from tests.integration.test_kafka import committed
from tests.kafka_helpers import count_per_partition, new_topics, produce, topic_name
from tests.reference import tumbling_truth
from tests.support import Daemon, run_cli, wait_until, window_files, write_config

FAST_CONSUMER = {"session_timeout_ms": 3000, "heartbeat_interval_ms": 300, "fetch_max_wait_ms": 10}


def static_config(tmp_path: Path, bootstrap: str, topic: str, group: str, *, finite: bool = True,
                  workers: int = 1, **source: Any) -> Path:
    doc: dict[str, Any] = {
        "pipeline": {"name": "static", "flow": "events >> per_user >> out"},
        "window": {"size": "5m", "lateness": "10s", "idle_timeout": "2s"},
        "sources": {"events": {"type": "kafka", "bootstrap_servers": bootstrap, "topics": [topic], "group_id": group,
                               "assignment": "static", "start": "earliest", "stop_at_end": finite,
                               "consumer": FAST_CONSUMER, **source}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id",
                                "aggregates": {"events": "count()", "spent": "sum(amount)"}}},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out"), "fsync": False}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "200ms", "shutdown_grace": "10s",
                   "workers": workers},
    }
    return write_config(tmp_path / f"static-{uuid.uuid4().hex[:6]}.toml", doc)


def got_rows(tmp_path: Path) -> dict[tuple[str, str], tuple[int, float]]:
    return {(r["window_start"], r["user_id"]): (r["events"], r["spent"])
            for rows in window_files(tmp_path / "out").values() for r in rows}


def assert_exact(got: dict[Any, tuple[int, float]], truth: dict[Any, dict[str, Any]]) -> None:
    assert set(got) == set(truth), f"{len(set(truth) - set(got))} windows missing, {len(set(got) - set(truth))} extra"
    wrong = [k for k, want in truth.items()
             if got[k][0] != want["events"] or got[k][1] != pytest.approx(want["spent"])]
    assert not wrong, f"{len(wrong)} windows wrong, e.g. {wrong[:3]}"


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Each partition's end, counted by reading it (Tansu's ListOffsets answer lags batched produces)."""
    return asyncio.run(count_per_partition(bootstrap, topic, partitions, idle_s=1.0))


def shares(stderr: str, topic: str) -> dict[str, set[str]]:
    """Each static assignment the log names, by worker ("" for a single process): its partitions."""
    found: dict[str, set[str]] = {}
    for m in re.finditer(r"static assignment(?: \(worker (\d+) of \d+\))?: \d+ of the \d+ partitions \[([^\]]*)\]",
                         stderr):
        found[m.group(1) or ""] = {p for p in m.group(2).split(", ") if p}
    assert found, stderr[-3000:]
    assert all(p.startswith(f"{topic}:") for ps in found.values() for p in ps)
    return found


def test_a_finite_static_run_is_exact_and_commits_the_end_offsets(tmp_path, kafka):
    topic, _, group = new_topics(kafka.bootstrap, 4)
    events = make_events(40_000, span_s=3600, seed=31)
    asyncio.run(produce(kafka.bootstrap, topic, events))  # a batching producer (linger_ms)
    res = run_cli("run", "-c", str(static_config(tmp_path, kafka.bootstrap, topic, group)), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"all sources finished: {len(events)} records read" in res.stderr, res.stderr[-3000:]
    assert shares(res.stderr, topic) == {"": {f"{topic}:{p}" for p in range(4)}}
    assert_exact(got_rows(tmp_path), tumbling_truth(events, 300, "user_id"))
    ends = end_offsets(kafka.bootstrap, topic, 4)
    assert asyncio.run(committed(kafka.bootstrap, group, topic, 4)) == ends
    assert sum(ends.values()) == len(events)


def test_sigkill_mid_run_then_a_restart_loses_nothing(tmp_path, kafka):
    topic, _, group = new_topics(kafka.bootstrap, 4)
    events = make_events(24_000, span_s=3600, seed=32)
    cfg = static_config(tmp_path, kafka.bootstrap, topic, group, finite=False, max_batch=200, start="committed")
    for chunk in (events[i:i + 6000] for i in range(0, len(events), 6000)):
        asyncio.run(produce(kafka.bootstrap, topic, chunk))
        before = asyncio.run(committed(kafka.bootstrap, group, topic, 4))
        with Daemon(cfg, tmp_path) as d:
            # killed without warning once it has committed something new
            wait_until(lambda d=d, before=before: asyncio.run(committed(kafka.bootstrap, group, topic, 4))
                       != before or d.proc.poll() is not None, 60, what="a commit")
            assert d.proc.poll() is None, d.stderr[-3000:]
            d.kill()
    restart_from = asyncio.run(committed(kafka.bootstrap, group, topic, 4))
    ends = end_offsets(kafka.bootstrap, topic, 4)
    assert sum(ends.values()) == len(events)
    # the restart is a finite run of the same config: it reads on from the commits to the end
    res = run_cli("run", "-c", str(cfg), "--set", "sources.events.stop_at_end=true", timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    behind = sum(ends[p] - (restart_from[p] or 0) for p in ends)
    assert behind < len(events)  # the killed runs' commits are where the restart reads on from
    assert f"all sources finished: {behind} records read" in res.stderr, res.stderr[-3000:]
    assert_exact(got_rows(tmp_path), tumbling_truth(events, 300, "user_id"))
    assert asyncio.run(committed(kafka.bootstrap, group, topic, 4)) == ends


def test_two_static_workers_read_disjoint_shares_and_the_whole_topic(tmp_path, kafka):
    topic, _, group = new_topics(kafka.bootstrap, 4)
    events = make_events(20_000, span_s=3600, seed=33)
    asyncio.run(produce(kafka.bootstrap, topic, events))
    res = run_cli("run", "-c", str(static_config(tmp_path, kafka.bootstrap, topic, group, workers=2)), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    found = shares(res.stderr, topic)
    assert set(found) == {"0", "1"} and not found["0"] & found["1"]
    assert found["0"] | found["1"] == {f"{topic}:{p}" for p in range(4)}
    assert_exact(got_rows(tmp_path), tumbling_truth(events, 300, "user_id"))
    # each worker committed its share under the one group
    assert asyncio.run(committed(kafka.bootstrap, group, topic, 4)) == end_offsets(kafka.bootstrap, topic, 4)


def test_a_finite_run_with_more_workers_than_partitions_ends(tmp_path, kafka):
    """The worker whose share is empty has nothing to read: it finishes at once instead of waiting for good."""
    topic, _, group = new_topics(kafka.bootstrap, 2)
    events = make_events(3000, span_s=1800, seed=35)
    asyncio.run(produce(kafka.bootstrap, topic, events))
    res = run_cli("run", "-c", str(static_config(tmp_path, kafka.bootstrap, topic, group, workers=3)), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert_exact(got_rows(tmp_path), tumbling_truth(events, 300, "user_id"))


def test_two_live_static_workers_are_exact_and_stop_on_sigterm(tmp_path, kafka):
    topic, _, group = new_topics(kafka.bootstrap, 4)
    events = make_events(8000, span_s=1800, seed=34)
    asyncio.run(produce(kafka.bootstrap, topic, events))
    truth = tumbling_truth(events, 300, "user_id")
    with Daemon(static_config(tmp_path, kafka.bootstrap, topic, group, finite=False, workers=2), tmp_path) as d:
        wait_until(lambda: len(re.findall(r"static assignment \(worker", d.stderr)) == 2, 60, what="both shares")
        closer = {"user_id": "closer", "ts": BASE_MS + 7_200_000, "amount": 0.0}
        asyncio.run(produce(kafka.bootstrap, topic, [closer] * 8))
        wait_until(lambda: set(truth) <= set(got_rows(tmp_path)), 90, what="every window")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
        found = shares(d.stderr, topic)
    assert set(found) == {"0", "1"} and not found["0"] & found["1"]
    assert_exact({k: v for k, v in got_rows(tmp_path).items() if k[1] != "closer"}, truth)


def test_a_topic_that_does_not_exist_yet_is_waited_for(tmp_path, kafka):
    topic, group = topic_name("in"), topic_name("grp")
    events = make_events(3000, span_s=1200, seed=35)
    with Daemon(static_config(tmp_path, kafka.bootstrap, topic, group), tmp_path) as d:
        wait_until(lambda: f"topic(s) {topic} do not exist yet" in d.stderr, 30, what="the wait for the topic")
        assert d.proc.poll() is None
        asyncio.run(create_topic(kafka.bootstrap, topic, 2))
        asyncio.run(produce(kafka.bootstrap, topic, events))
        assert d.wait(120) == 0, d.stderr[-3000:]
    assert_exact(got_rows(tmp_path), tumbling_truth(events, 300, "user_id"))


def test_a_stop_while_waiting_for_the_topic_exits_at_once(tmp_path, kafka):
    with Daemon(static_config(tmp_path, kafka.bootstrap, topic_name("in"), topic_name("grp")), tmp_path) as d:
        wait_until(lambda: "do not exist yet" in d.stderr, 30, what="the wait for the topic")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    assert "stopped before the pipeline started" in d.stderr and "Unclosed" not in d.stderr


def test_static_with_a_pattern_is_refused(tmp_path, kafka):
    cfg = static_config(tmp_path, kafka.bootstrap, "t", "g")
    for command in ("validate", "run"):
        res = run_cli(command, "-c", str(cfg), "--set", "sources.events.topics=[]",
                      "--set", 'sources.events.pattern="in-.*"')
        assert res.returncode == 2, res.stderr
        assert 'assignment = "static" reads the partitions of named topics' in res.stderr, res.stderr
        assert "sources.events" in res.stderr and "Traceback" not in res.stderr


def test_validate_names_the_assignment(tmp_path, kafka):
    res = run_cli("validate", "-c", str(static_config(tmp_path, kafka.bootstrap, "t", "g")))
    assert res.returncode == 0, res.stderr
    assert "group g (json, start earliest, static assignment: the partitions at start, new ones after a restart" \
        in res.stdout


def test_static_is_refused_while_a_group_mode_replica_is_in_the_group(tmp_path, kafka):
    topic, _, group = new_topics(kafka.bootstrap, 2)
    asyncio.run(produce(kafka.bootstrap, topic, make_events(500, span_s=600, seed=36)))
    replica = static_config(tmp_path, kafka.bootstrap, topic, group, finite=False, assignment="group")
    with Daemon(replica, tmp_path) as d:
        wait_until(lambda: "assigned" in d.stderr, 60, what="the group-mode replica to join")
        res = run_cli("run", "-c", str(static_config(tmp_path, kafka.bootstrap, topic, group)), timeout=120)
        assert res.returncode == 1, res.stderr[-3000:]
        assert f"consumer group {group!r} has 1 active member(s)" in res.stderr, res.stderr[-3000:]
        assert "all sources finished" not in res.stderr and "Unclosed" not in res.stderr
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
