"""Producing test input to the broker and reading results back."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from rtstream.testing.peers.tansu import create_topic

# A static reader's consumer settings for tests that kill it: its lease membership lapses 3 s after
# the kill (rtstream.sources.kafka.static_guard), so the restart reads within seconds, not 18
QUICK_STATIC = {"fetch_max_wait_ms": 10, "session_timeout_ms": 3000, "heartbeat_interval_ms": 300}


async def produce(bootstrap: str, topic: str, items: list[Any], key: str | None = "user_id",
                  timestamp_field: str | None = None, partition: int | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futs = []
        for item in items:
            value = item if isinstance(item, bytes) else orjson.dumps(item)
            k = item.get(key) if key and isinstance(item, dict) and item.get(key) is not None else None
            ts = item.get(timestamp_field) if timestamp_field and isinstance(item, dict) else None
            futs.append(await producer.send(topic, value, key=None if k is None else str(k).encode(),
                                            timestamp_ms=ts, partition=partition))
        await asyncio.gather(*futs)
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str, expect: int | None = None, idle_s: float = 1.5,
                   timeout_s: float = 60, isolation_level: str = "read_uncommitted") -> list[tuple[bytes | None, dict[str, Any]]]:
    """Every message of `topic` as (key, decoded value): until `expect` arrived, or nothing new for idle_s."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"reader-{uuid.uuid4().hex}",
                                auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=10,
                                session_timeout_ms=6000, heartbeat_interval_ms=300, isolation_level=isolation_level)
    await consumer.start()
    out: list[tuple[bytes | None, dict[str, Any]]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last_new = loop.time()
    try:
        while loop.time() < deadline:
            data = await consumer.getmany(timeout_ms=200)
            got = [m for msgs in data.values() for m in msgs]
            out.extend((m.key, orjson.loads(m.value)) for m in got)
            if got:
                last_new = loop.time()
            if expect is not None and len(out) >= expect:
                break
            if expect is None and out and loop.time() - last_new > idle_s:
                break
    finally:
        await consumer.stop()
    return out


def covers(bootstrap: str, topic: str, truth: dict[Any, Any]) -> bool:
    """Whether `topic` holds a result for every (window_start, user_id) of `truth` (for wait_until)."""
    seen = {(v["window_start"], v["user_id"]) for _, v in asyncio.run(read_all(bootstrap, topic, idle_s=0.5))}
    return len(seen) >= len(truth)


def topic_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_topics(bootstrap: str, partitions: int, out_partitions: int | None = None) -> tuple[str, str, str]:
    """(input topic, output topic, group): fresh names, the input topic created with `partitions`
    and the output one with `out_partitions` (not created when None)."""
    src, out, group = topic_name("in"), topic_name("out"), topic_name("grp")
    asyncio.run(create_topic(bootstrap, src, partitions))
    if out_partitions is not None:
        asyncio.run(create_topic(bootstrap, out, out_partitions))
    return src, out, group


async def produce_to_partitions(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes, int | None]],
                                max_request_size: int = 16 << 20) -> list[tuple[int, int]]:
    """Send (key, value, partition or None) as they are, values of several MB included; returns
    each message's (partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_request_size=max_request_size,
                                max_batch_size=1 << 20)
    await producer.start()
    try:
        futs = [await producer.send(topic, value, key=key, partition=partition) for key, value, partition in items]
        metas = await asyncio.gather(*futs)
    finally:
        await producer.stop()
    return [(m.partition, m.offset) for m in metas]


async def count_per_partition(bootstrap: str, topic: str, partitions: int, idle_s: float = 2.0) -> dict[int, int]:
    """How many messages each partition of `topic` holds, read from the beginning without a group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10,
                                max_partition_fetch_bytes=32 << 20)
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    counts = dict.fromkeys(range(partitions), 0)
    loop = asyncio.get_running_loop()
    last_new = loop.time()
    try:
        while loop.time() - last_new < idle_s:
            data = await consumer.getmany(timeout_ms=200)
            for tp, msgs in data.items():
                counts[tp.partition] += len(msgs)
                last_new = loop.time()
    finally:
        await consumer.stop()
    return counts


async def first_fetch_seconds(bootstrap: str, topic: str, partition: int = 0, cap_s: float = 60.0) -> float:
    """How long a fresh consumer waits for the broker's first answer to a fetch of `partition` from its
    beginning (cap_s when none came): a measure of the broker, not of any client of it."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10,
                                request_timeout_ms=int(cap_s * 1000) + 5000)
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        await consumer.start()
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        began = loop.time()
        await consumer.getmany(timeout_ms=int(cap_s * 1000), max_records=1)
        return loop.time() - began
    finally:
        await consumer.stop()
