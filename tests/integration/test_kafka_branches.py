"""A flow of two branches over Kafka (Tansu, a consumer group, three partitions): a tumbling 5m window
per user into a Kafka topic, and count windows of 4 per user into files, SIGKILLed after a commit in
each of three rounds and run on to the end: both equal their independent references (nothing lost,
nothing written twice different), nothing dead-lettered."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import defaultdict

import pytest

from rtstream.model.window import iso_utc  # formatting only: the windows are computed here
from tests.data import make_events
from tests.integration.test_kafka import FAST_CONSUMER, committed
from tests.kafka_helpers import covers, new_topics, produce, read_all
from tests.reference import tumbling_truth
from tests.support import Daemon, read_jsonl, wait_until, window_files, write_config

COUNT = 4


def config(tmp_path, bootstrap, src, out, group):
    doc = {
        "pipeline": {"name": "kbranches", "flow": "events >> per_user >> results\nevents >> every4 >> fours"},
        "window": {"size": "5m", "lateness": "10s", "idle_timeout": "2s"},
        "sources": {"events": {"type": "kafka", "bootstrap_servers": bootstrap, "topics": [src], "group_id": group,
                               "stop_at_end": False, "consumer": FAST_CONSUMER, "max_batch": 200}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id",
                                "aggregates": {"events": "count()", "spent": "sum(amount)"}},
                   "every4": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"},
                              "window": {"type": "count", "size": COUNT}}},
        "sinks": {"results": {"type": "kafka", "bootstrap_servers": bootstrap, "topic": out},
                  "fours": {"type": "file", "path": str(tmp_path / "fours")}},
        "state": {"checkpoint_interval": "500ms"},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "200ms", "shutdown_grace": "10s"},
    }
    return write_config(tmp_path / f"kb-{uuid.uuid4().hex[:6]}.toml", doc)


def count_reference(events):
    """Per user, in the order produced (a user's records share a partition): every COUNT of them."""
    by_user = defaultdict(list)
    for e in events:
        by_user[e["user_id"]].append(e)
    return {(iso_utc(min(x["ts"] for x in items[i:i + COUNT])), u): COUNT
            for u, items in by_user.items() for i in range(0, len(items) - len(items) % COUNT, COUNT)}


def fours(tmp_path):
    return {(r["window_start"], r["user_id"]): r["n"] for rows in window_files(tmp_path / "fours").values()
            for r in rows}


@pytest.mark.parametrize("seed", [1, 2])
def test_two_branches_over_kafka_survive_kills(tmp_path, kafka, seed):
    src, out, group = new_topics(kafka.bootstrap, 3, 3)
    events = make_events(6000, span_s=1800, seed=seed, users=30)
    cfg = config(tmp_path, kafka.bootstrap, src, out, group)
    for i in range(0, len(events), 2000):
        asyncio.run(produce(kafka.bootstrap, src, events[i:i + 2000]))
        with Daemon(cfg, tmp_path) as d:
            wait_until(lambda: any(v for v in asyncio.run(committed(kafka.bootstrap, group, src, 3)).values()) or
                       d.proc.poll() is not None, 60, what="a commit")
            assert d.proc.poll() is None, d.stderr
            d.kill()
    truth = tumbling_truth(events, 300, "user_id")
    want4 = count_reference(events)
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: covers(kafka.bootstrap, out, truth) and len(fours(tmp_path)) >= len(want4), 90,
                   interval=1, what="every window of both branches")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    latest = {}
    for key, value in asyncio.run(read_all(kafka.bootstrap, out)):
        latest[key] = value
    got = {(v["window_start"], v["user_id"]): (v["events"], v["spent"]) for v in latest.values()}
    assert set(got) == set(truth)
    for k, want in truth.items():
        assert got[k][0] == want["events"] and got[k][1] == pytest.approx(want["spent"]), k
    assert fours(tmp_path) == want4
    assert read_jsonl(tmp_path / "dead.jsonl") == []
