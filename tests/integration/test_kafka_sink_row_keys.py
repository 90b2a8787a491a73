"""The Kafka sink's message keys through the real daemon and a real broker: what a compacted topic
keeps (the last value of each key) is every row, for rows without a key (a join's pairs) and for
count windows of one key that share their start, and a replay (a second run from the start) leaves
the compacted view the same."""

from __future__ import annotations

import asyncio
from collections import Counter

from rtstream.model.window import iso_utc as iso
from rtstream.testing.peers.tansu import create_topic
from tests.data import BASE_MS, write_lines
from tests.e2e.test_sink_row_identity import join_reference, orders_and_payments
from tests.kafka_helpers import read_all, topic_name
from tests.support import read_jsonl, run_cli, write_config


def compacted(messages: list[tuple[bytes | None, dict]]) -> dict[bytes | None, dict]:
    """What log compaction converges to: the last value of each key."""
    out: dict[bytes | None, dict] = {}
    for key, value in messages:
        out[key] = value
    return out


def config(tmp_path, bootstrap: str, topic: str, count: bool) -> object:
    sources = {"orders": {"type": "file", "path": str(tmp_path / "orders.jsonl")}}
    if count:
        stages = {"per_user": {"type": "aggregate", "key": "user", "aggregates": {"n": "count()", "total": "sum(v)"}}}
        flow = "orders >> per_user >> out"
    else:
        sources["payments"] = {"type": "file", "path": str(tmp_path / "payments.jsonl")}
        stages = {"match": {"type": "join", "left": "orders", "right": "payments", "on": "order_id"}}
        flow = "[orders, payments] >> match >> out"
    doc = {
        "pipeline": {"name": "kafkarows", "flow": flow},
        "window": {"type": "count", "size": 5} if count else {"size": "1m", "lateness": "0s"},
        "sources": sources,
        "stages": stages,
        "sinks": {"out": {"type": "kafka", "bootstrap_servers": bootstrap, "topic": topic}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state")},
        **({"state": {"checkpoint_interval": "1s"}} if count else {}),
    }
    return write_config(tmp_path / "k.toml", doc)


def run_twice(tmp_path, cfg, bootstrap: str, topic: str, rows_per_run: int) -> list[list[tuple[bytes | None, dict]]]:
    views = []
    for run in range(2):  # the second run replays every window (a fresh state dir)
        res = run_cli("run", "-c", str(cfg), timeout=120)
        assert res.returncode == 0, res.stderr[-3000:]
        assert not read_jsonl(tmp_path / "dead.jsonl")
        views.append(asyncio.run(read_all(bootstrap, topic, expect=rows_per_run * (run + 1))))
        (tmp_path / "state").rename(tmp_path / f"state-{run}")
    return views


def test_a_compacted_topic_keeps_every_pair_of_a_join_and_a_replay_the_same(tmp_path, kafka):
    orders, payments = orders_and_payments(6)
    write_lines(tmp_path / "orders.jsonl", orders)
    write_lines(tmp_path / "payments.jsonl", payments)
    want = join_reference(orders, payments)
    topic = topic_name("pairs")
    asyncio.run(create_topic(kafka.bootstrap, topic, 3))
    cfg = config(tmp_path, kafka.bootstrap, topic, count=False)
    for messages in run_twice(tmp_path, cfg, kafka.bootstrap, topic, sum(want.values())):
        view = compacted(messages)
        assert Counter((v["order_id"], v["amount"], v["paid"], v["window_start"]) for v in view.values()) == want
        assert all(k is not None and b"|#" in k for k in view)  # window_start|#n: a row's place in its window


def test_a_compacted_topic_keeps_count_windows_of_one_key_sharing_their_start(tmp_path, kafka):
    write_lines(tmp_path / "orders.jsonl", [{"user": "x", "ts": BASE_MS, "v": i} for i in range(12)])
    topic = topic_name("counts")
    asyncio.run(create_topic(kafka.bootstrap, topic, 1))
    cfg = config(tmp_path, kafka.bootstrap, topic, count=True)
    start = iso(BASE_MS)
    for messages in run_twice(tmp_path, cfg, kafka.bootstrap, topic, 3):
        view = compacted(messages)
        assert Counter((v["user"], v["window_start"], v["n"], v["total"]) for v in view.values()) == Counter(
            {("x", start, 5, 10): 1, ("x", start, 5, 35): 1, ("x", start, 2, 21): 1})
        assert sorted(view) == sorted(f"{start}|{v['window_id']}|x".encode() for v in view.values())
