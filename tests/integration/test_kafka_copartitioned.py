"""A join run as `workers = 2` over static Kafka sources: partition p of both topics is read by one
worker (p mod 2), so every key's orders and payments meet in one process and the output equals the
one-process reference. Topics partitioned unlike are refused at start; group mode at validate."""

from __future__ import annotations

import asyncio
import random
import zlib
from pathlib import Path

import orjson

from rtstream.testing.peers.tansu import create_topic
from tests.integration.test_kafka_joins import config, data, reference, written
from tests.kafka_helpers import produce, read_all, topic_name
from tests.support import run_cli


def finite_join(tmp_path: Path, bootstrap: str, topics: tuple[str, str], out: Path) -> Path:
    from rtstream.testing.peers.ports import free_port

    return config(tmp_path, bootstrap, topics, topic_name("g"), out, free_port(), None)


def split_apart_by_the_offset_rule() -> tuple[str, str]:
    """Names whose crc32 differ in parity: the rule for topics outside a join, (p + crc32(t)) mod 2,
    would put partition p of each on a different worker (half of all random pairs)."""
    while True:
        topics = (topic_name("orders"), topic_name("payments"))
        if zlib.crc32(topics[0].encode()) % 2 != zlib.crc32(topics[1].encode()) % 2:
            return topics


FINITE = ["--set", "daemon.workers=2", "--set", "sources.orders.stop_at_end=true",
          "--set", "sources.payments.stop_at_end=true"]


def test_two_static_workers_join_as_one_process_does(tmp_path, kafka):
    seed = random.randrange(1 << 30)
    orders, payments = data(seed)
    topics = split_apart_by_the_offset_rule()
    out_topic = topic_name("joined")
    for t in topics:
        asyncio.run(create_topic(kafka.bootstrap, t, 4))
    asyncio.run(produce(kafka.bootstrap, topics[0], orders, key="id"))  # keyed by the join key
    asyncio.run(produce(kafka.bootstrap, topics[1], payments, key="id"))
    # a Kafka sink: each worker's rows are messages of their own (a file sink replaces a window's
    # keyless rows whole, so two workers' parts of a join's window would not add up: refused at load)
    sink = f'sinks.out={{type = "kafka", bootstrap_servers = "{kafka.bootstrap}", topic = "{out_topic}"}}'
    res = run_cli("run", "-c", str(finite_join(tmp_path, kafka.bootstrap, topics, tmp_path / "out")), *FINITE,
                  "--set", sink, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    truth = reference(orders, payments)
    got: dict[str, list[bytes]] = {}
    for _, row in asyncio.run(read_all(kafka.bootstrap, out_topic, expect=sum(map(len, truth.values())))):
        start = row.pop("window_start")
        row.pop("window_end")
        got.setdefault(start, []).append(orjson.dumps(row, option=orjson.OPT_SORT_KEYS))
    got = {w: sorted(rows) for w, rows in got.items()}
    assert got == truth, f"seed {seed}: " + str({w: (len(got.get(w, [])), len(truth[w])) for w in truth})
    for t in topics:
        for p in range(4):  # partition p of both topics on worker p mod 2
            assert f"[worker {p % 2}]" in next(line for line in res.stderr.splitlines()
                                               if f"{t}:{p}" in line and "static assignment" in line)


def test_topics_partitioned_unlike_are_refused_at_start(tmp_path, kafka):
    topics = (topic_name("orders"), topic_name("payments"))
    asyncio.run(create_topic(kafka.bootstrap, topics[0], 4))
    asyncio.run(create_topic(kafka.bootstrap, topics[1], 3))
    sink = f'sinks.out={{type = "kafka", bootstrap_servers = "{kafka.bootstrap}", topic = "{topic_name("joined")}"}}'
    res = run_cli("run", "-c", str(finite_join(tmp_path, kafka.bootstrap, topics, tmp_path / "out")), *FINITE,
                  "--set", sink, timeout=120)  # a file sink of keyless rows is refused with workers at load
    assert res.returncode == 1, res.stderr[-3000:]
    assert f"{topics[0]} has 4 partitions and {topics[1]} has 3" in res.stderr, res.stderr[-3000:]
    assert "partitioned alike" in res.stderr and "Traceback" not in res.stderr
    assert "restarting" not in res.stderr  # a restart cannot help: the supervisor stops


def test_one_process_joins_topics_partitioned_unlike(tmp_path, kafka):
    topics = (topic_name("orders"), topic_name("payments"))
    asyncio.run(create_topic(kafka.bootstrap, topics[0], 4))
    asyncio.run(create_topic(kafka.bootstrap, topics[1], 3))
    orders, payments = data(7)
    asyncio.run(produce(kafka.bootstrap, topics[0], orders, key="id"))
    asyncio.run(produce(kafka.bootstrap, topics[1], payments, key="id"))
    out = tmp_path / "out"
    res = run_cli("run", "-c", str(finite_join(tmp_path, kafka.bootstrap, topics, out)), *FINITE[2:], timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert written(out) == reference(orders, payments)


def test_group_mode_sources_of_a_join_with_workers_are_refused_at_validate(tmp_path, kafka):
    cfg = finite_join(tmp_path, kafka.bootstrap, ("o", "p"), tmp_path / "out")
    res = run_cli("validate", "-c", str(cfg), "--set", "daemon.workers=2",
                  "--set", 'sources.payments.assignment="group"')
    assert res.returncode == 2, res.stderr
    assert "daemon.workers: " in res.stderr and "join 'match'" in res.stderr, res.stderr
    assert "payments" in res.stderr and 'assignment = "static"' in res.stderr, res.stderr
