"""Kafka in and out against a real broker (Tansu), with the real daemon process."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from rtstream.model.window import iso_utc
from rtstream.testing.peers.ports import free_port
from rtstream.testing.peers.tansu import create_topic
from tests.data import BASE_MS, make_events
from tests.kafka_helpers import covers, new_topics, produce, read_all
from tests.reference import iso, session_truth, tumbling_truth
from tests.support import Daemon, read_jsonl, run_cli, status, wait_until, write_config

FAST_CONSUMER = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300, "fetch_max_wait_ms": 10}


def kafka_config(tmp_path, bootstrap, topic, out_topic, *, group="g", stop_at_end=True, sink_bootstrap=None,
                 name="kafka", window=None, time="event", sink=None, **source):
    doc = {
        "pipeline": {"name": name, "flow": "events >> per_user >> results"},
        "window": {"size": "5m", "time": time, "lateness": "10s", "idle_timeout": "2s", **(window or {})},
        "sources": {"events": {"type": "kafka", "bootstrap_servers": bootstrap, "topics": [topic],
                               "group_id": group, "stop_at_end": stop_at_end, "consumer": FAST_CONSUMER, **source}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id",
                                "aggregates": {"events": "count()", "spent": "sum(amount)", "biggest": "max(amount)"}}},
        "sinks": {"results": {"type": "kafka", "bootstrap_servers": sink_bootstrap or bootstrap, "topic": out_topic,
                              "compression": "lz4", **(sink or {})}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "200ms", "shutdown_grace": "10s"},
    }
    return write_config(tmp_path / f"{name}-{uuid.uuid4().hex[:6]}.toml", doc)


def check_against_truth(messages, truth):
    latest = {}
    for key, value in messages:
        latest[key] = value  # a compacted topic keeps the last value per key
    got = {(v["window_start"], v["user_id"]): v for v in latest.values()}
    assert set(got) == set(truth), (len(got), len(truth))
    for k, want in truth.items():
        assert got[k]["events"] == want["events"], k
        assert got[k]["spent"] == pytest.approx(want["spent"]), k
        assert got[k]["biggest"] == want["biggest"], k
    for key, value in latest.items():
        assert key == f"{value['window_start']}|{value['user_id']}".encode()


def test_finite_kafka_to_kafka_matches_reference(tmp_path, kafka):
    src, out, _ = new_topics(kafka.bootstrap, 4, 2)
    events = make_events(8000, span_s=1800, seed=3)
    asyncio.run(produce(kafka.bootstrap, src, events, timestamp_field="ts"))
    res = run_cli("run", "-c", str(kafka_config(tmp_path, kafka.bootstrap, src, out, time="source")))
    assert res.returncode == 0, res.stderr
    truth = tumbling_truth(events, 300, "user_id")
    messages = asyncio.run(read_all(kafka.bootstrap, out, expect=len(truth)))
    assert len(messages) == len(truth)  # one message per (window, key) on a clean run
    check_against_truth(messages, truth)


def test_malformed_values_go_to_dead_letters_with_their_position(tmp_path, kafka):
    src, out, _ = new_topics(kafka.bootstrap, 1, 1)
    good = make_events(200, span_s=600, seed=5)
    items = good[:100] + [b"{not json", b'"a string"', b'{"user_id": "x", "amount": 1}'] + good[100:]
    asyncio.run(produce(kafka.bootstrap, src, items, key=None))
    res = run_cli("run", "-c", str(kafka_config(tmp_path, kafka.bootstrap, src, out)))
    assert res.returncode == 0, res.stderr
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert [(d["reason"], d["partition"], d["offset"]) for d in dead] == [
        ("decode", f"{src}:0", 100), ("decode", f"{src}:0", 101), ("no_time", f"{src}:0", 102)]
    check_against_truth(asyncio.run(read_all(kafka.bootstrap, out)), tumbling_truth(good, 300, "user_id"))


async def committed(bootstrap, group, topic, partitions):
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        return {p: await c.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await c.stop()


def test_sigkill_at_several_points_loses_nothing(tmp_path, kafka):
    src, out, group = new_topics(kafka.bootstrap, 3, 3)
    events = make_events(12000, span_s=3600, seed=9)
    cfg = kafka_config(tmp_path, kafka.bootstrap, src, out, group=group, stop_at_end=False, max_batch=200)
    chunks = [events[i:i + 3000] for i in range(0, len(events), 3000)]
    for chunk in chunks:
        asyncio.run(produce(kafka.bootstrap, src, chunk))
        with Daemon(cfg, tmp_path) as d:
            # let it work a little, then kill it without warning
            wait_until(lambda: any(v for v in asyncio.run(committed(kafka.bootstrap, group, src, 3)).values()) or
                       d.proc.poll() is not None, 60, what="a commit")
            assert d.proc.poll() is None, d.stderr
            d.kill()
    with Daemon(cfg, tmp_path) as d:  # the last run finishes the job: idle partitions close the windows
        truth = tumbling_truth(events, 300, "user_id")
        wait_until(lambda: covers(kafka.bootstrap, out, truth),
                   90, interval=1, what="every window")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr
    check_against_truth(asyncio.run(read_all(kafka.bootstrap, out)), truth)
    assert read_jsonl(tmp_path / "dead.jsonl") == []


def test_two_replicas_share_partitions_and_survive_a_kill(tmp_path, kafka):
    src, out, group = new_topics(kafka.bootstrap, 6, 3)
    events = make_events(18000, span_s=3600, seed=21, users=60)
    cfg = kafka_config(tmp_path, kafka.bootstrap, src, out, group=group, stop_at_end=False, max_batch=100)
    asyncio.run(produce(kafka.bootstrap, src, events[:9000]))
    a = Daemon(cfg, tmp_path)
    b = Daemon(cfg, tmp_path)
    try:
        wait_until(lambda: "assigned" in a.stderr and "assigned" in b.stderr, 60, what="both replicas assigned")
        b.kill()  # one replica dies mid-stream; the other takes over its partitions
        asyncio.run(produce(kafka.bootstrap, src, events[9000:]))
        b = Daemon(cfg, tmp_path)  # and comes back
        truth = tumbling_truth(events, 300, "user_id")
        wait_until(lambda: covers(kafka.bootstrap, out, truth),
                   120, interval=1, what="every window from the two replicas")
        for d in (a, b):
            d.signal(signal.SIGTERM)
        assert a.wait(30) == 0 and b.wait(30) == 0
    finally:
        for d in (a, b):
            d.__exit__()
    check_against_truth(asyncio.run(read_all(kafka.bootstrap, out)), truth)
    assert "revoked" in a.stderr  # the survivor saw the rebalance
    assert read_jsonl(tmp_path / "dead.jsonl") == []  # a taken-over partition's replay is never "late"


def test_unreachable_sink_holds_commits_back(tmp_path, kafka, fresh_kafka):
    src, out, group = new_topics(kafka.bootstrap, 1)
    asyncio.run(create_topic(fresh_kafka.bootstrap, out, 1))
    events = make_events(2000, span_s=1200, seed=4)
    cfg = kafka_config(tmp_path, kafka.bootstrap, src, out, group=group, stop_at_end=False,
                       sink_bootstrap=fresh_kafka.bootstrap)
    with Daemon(cfg, tmp_path, "--set", "defaults.retry_delay=100ms", "--set", "defaults.max_retry_delay=500ms",
                "--set", "sinks.results.producer={request_timeout_ms = 1000}") as d:
        wait_until(lambda: "assigned" in d.stderr, 30, what="assignment")
        fresh_kafka.stop()  # the sink's broker goes away before any window is written
        asyncio.run(produce(kafka.bootstrap, src, events))
        wait_until(lambda: "sink results failed on window" in d.stderr, 60, what="failed writes")
        wait_until(lambda: d.stderr.count("sink results failed on window") >= 3, 60, what="retries")
        assert d.proc.poll() is None  # still alive, still retrying
        assert asyncio.run(committed(kafka.bootstrap, group, src, 1))[0] in (None, 0)
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
    assert asyncio.run(committed(kafka.bootstrap, group, src, 1))[0] in (None, 0)


def test_validate_shows_kafka_without_secrets(tmp_path, kafka):
    cfg = kafka_config(tmp_path, kafka.bootstrap, "t", "o", sasl_mechanism="PLAIN", sasl_plain_username="u",
                       sasl_plain_password="hunter2", security_protocol="SASL_PLAINTEXT")
    res = run_cli("validate", "-c", str(cfg))
    assert res.returncode == 0, res.stderr
    assert f"kafka: t @ {kafka.bootstrap} group g" in res.stdout and "hunter2" not in res.stdout


def test_window_start_iso_helper():
    assert iso(BASE_MS) == "2026-01-01T00:00:00Z"


def hourly_config(tmp_path, bootstrap, src, group, name="hourly", checkpoints=None):
    """Kafka -> per-user count over one-hour windows -> SQLite, checkpointed every second, with an admin port."""
    port = free_port()
    doc = {
        "pipeline": {"name": "hourly", "flow": "events >> per_user >> db"},
        "window": {"size": "1h", "lateness": "0s", "idle_timeout": "1h"},
        "sources": {"events": {"type": "kafka", "bootstrap_servers": bootstrap, "topics": [src],
                               "group_id": group, "consumer": FAST_CONSUMER}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"events": "count()"}}},
        "sinks": {"db": {"type": "sqlite", "path": str(tmp_path / f"{name}.db"), "table": "hourly"}},
        "state": {"checkpoint_interval": "1s", **({"path": str(checkpoints)} if checkpoints else {})},
        "admin": {"listen": f"127.0.0.1:{port}"},
        "daemon": {"state_dir": str(tmp_path / f"state-{name}"), "commit_interval": "200ms"},
    }
    return write_config(tmp_path / f"{name}.toml", doc), port


def checkpointed(path):
    """The positions checkpointed, summed over partitions (0 before the first checkpoint)."""
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        try:
            return sum(r[0] for r in db.execute("select position from checkpoints"))
        except sqlite3.OperationalError:
            return 0  # the daemon has created the file but not yet its table


def hourly_rows(*paths):
    out = {}
    for path in paths:
        try:
            with sqlite3.connect(path) as db:
                out.update(db.execute("select user_id, events from hourly where user_id != 'closer'").fetchall())
        except sqlite3.OperationalError:
            pass  # not written yet
    return out


def close_the_hour(bootstrap, src, partitions):
    closer = [{"user_id": "closer", "ts": BASE_MS + 7_200_000, "amount": 0.0}]
    for p in range(partitions):
        asyncio.run(produce(bootstrap, src, closer, partition=p))


def test_checkpoint_restart_reads_on_from_the_snapshot_not_the_commit(tmp_path, kafka):
    src, _, group = new_topics(kafka.bootstrap, 3)
    events = make_events(4000, span_s=1800, seed=4)
    cfg, port = hourly_config(tmp_path, kafka.bootstrap, src, group)
    store = tmp_path / "state-hourly" / "checkpoints.db"
    asyncio.run(produce(kafka.bootstrap, src, events[:3000]))
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: checkpointed(store) == 3000, 60, what="a checkpoint of the first 3000")
        asyncio.run(produce(kafka.bootstrap, src, events[3000:]))
        wait_until(lambda: (status(port) or {}).get("records_in") == 4000, 60, what="all 4000 read")
        d.kill()
    covered = checkpointed(store)
    assert 3000 <= covered <= 4000
    # the hour is open, so the group's commits stay at its first records: a host without the
    # checkpoint replays the whole hour and loses nothing
    assert all(not c for c in asyncio.run(committed(kafka.bootstrap, group, src, 3)).values())

    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: "restored" in d.stderr and status(port), 60, what="the restore")
        close_the_hour(kafka.bootstrap, src, 3)
        truth = tumbling_truth(events, 3600, "user_id")
        got = wait_until(lambda: len(hourly_rows(tmp_path / "hourly.db")) == len(truth) and
                         hourly_rows(tmp_path / "hourly.db"), 60, what="the hour's rows")
        assert status(port)["records_in"] == 4000 - covered + 3  # what followed the checkpoint, and the closers
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr
    assert got == {user: want["events"] for (_, user), want in truth.items()}


def test_a_partition_moves_with_its_state_through_a_shared_checkpoint_store(tmp_path, kafka):
    src, _, group = new_topics(kafka.bootstrap, 4)
    events = make_events(4000, span_s=1800, seed=8)
    shared = tmp_path / "shared" / "checkpoints.db"
    cfg_a, port_a = hourly_config(tmp_path, kafka.bootstrap, src, group, "a", shared)
    cfg_b, port_b = hourly_config(tmp_path, kafka.bootstrap, src, group, "b", shared)
    asyncio.run(produce(kafka.bootstrap, src, events))
    a = Daemon(cfg_a, tmp_path)
    b = None
    try:
        wait_until(lambda: checkpointed(shared) == 4000, 60, what="replica a to read and checkpoint everything")
        b = Daemon(cfg_b, tmp_path)  # the group rebalances: a hands two partitions over
        wait_until(lambda: "revoked" in a.stderr and "restored" in b.stderr, 60, what="b to restore a's partitions")
        close_the_hour(kafka.bootstrap, src, 4)
        truth = tumbling_truth(events, 3600, "user_id")
        got = wait_until(lambda: len(hourly_rows(tmp_path / "a.db", tmp_path / "b.db")) == len(truth) and
                         hourly_rows(tmp_path / "a.db", tmp_path / "b.db"), 60, what="the hour from both replicas")
        assert status(port_b)["records_in"] == 2  # only the closers of its two partitions: nothing replayed
        assert status(port_a)["records_in"] >= 4000
        for d in (a, b):
            d.signal(signal.SIGTERM)
        assert a.wait(30) == 0 and b.wait(30) == 0
    finally:
        for d in (a, b):
            if d is not None:
                d.__exit__()
    assert got == {user: want["events"] for (_, user), want in truth.items()}
    assert read_jsonl(tmp_path / "state-b" / "dead_letters.jsonl") == []


@pytest.mark.parametrize("key_field", [None, "user_id"])
def test_sessions_by_the_kafka_key_or_the_sources_key_field(tmp_path, kafka, key_field):
    src, _, group = new_topics(kafka.bootstrap, 2)
    events = make_events(1500, span_s=3600, users=30, seed=31)
    for e in events:
        e["account"] = e.pop("user_id")  # the message key is the account; key_field names it again
    asyncio.run(produce(kafka.bootstrap, src, events, key="account"))
    doc = {
        "pipeline": {"name": "visits", "flow": "events >> visits >> db"},
        "window": {"type": "session", "gap": "4m", "lateness": "10s"},
        "sources": {"events": {"type": "kafka", "bootstrap_servers": kafka.bootstrap, "topics": [src],
                               "group_id": group, "stop_at_end": True, "consumer": FAST_CONSUMER,
                               **({"key_field": "account"} if key_field else {})}},
        "stages": {"visits": {"type": "aggregate", "aggregates": {"events": "count()", "spent": "sum(amount)"}}},
        "sinks": {"db": {"type": "sqlite", "path": str(tmp_path / "out.db"), "table": "visits"}},  # keyed by start, key
        "daemon": {"state_dir": str(tmp_path / "state")},
    }
    res = run_cli("run", "-c", str(write_config(tmp_path / "visits.toml", doc)))
    assert res.returncode == 0, res.stderr
    with sqlite3.connect(tmp_path / "out.db") as db:
        got = sorted(db.execute("select window_start, window_end, key, events from visits").fetchall())
    want = sorted((iso_utc(s), iso_utc(e), k, n) for s, e, k, n, _ in session_truth(events, 240_000, "account"))
    assert got == want
