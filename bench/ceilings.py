"""What the hardware and libraries allow, measured in the same run as rtstream, for the ratios.

- raw: an aiokafka design with nothing else: getmany + orjson + a dict aggregate + producing results.
- cpu: records already in memory: orjson + a dict aggregate.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from operator import itemgetter

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.workload import WINDOW_MS


def fold(windows: dict[int, dict[str, list[float]]], raws: Iterable[bytes]) -> None:
    """The least an aggregation can do: decode, find the window, count and sum per user."""
    loads = orjson.loads
    for raw in raws:
        d = loads(raw)
        ts = d["ts"]
        start = ts - ts % WINDOW_MS
        w = windows.get(start)
        if w is None:
            w = windows[start] = {}
        acc = w.get(d["user_id"])
        if acc is None:
            w[d["user_id"]] = [1, d["amount"]]
        else:
            acc[0] += 1
            acc[1] += d["amount"]


def cpu_ceiling(values: list[tuple[bytes, bytes]]) -> tuple[float, int]:
    t0 = time.perf_counter()
    windows: dict[int, dict[str, list[float]]] = {}
    fold(windows, map(itemgetter(1), values))
    took = time.perf_counter() - t0
    return len(values) / took, sum(len(w) for w in windows.values())


async def raw_ceiling(bootstrap: str, topic: str, out_topic: str, n: int) -> tuple[float, int]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"ceiling-{uuid.uuid4().hex}",
                                auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=10)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    t0 = time.perf_counter()
    await consumer.start()
    await producer.start()
    windows: dict[int, dict[str, list[float]]] = {}
    seen = 0
    try:
        while seen < n:
            data = await consumer.getmany(timeout_ms=200, max_records=5000)
            for msgs in data.values():
                seen += len(msgs)
                fold(windows, [m.value for m in msgs])
        futs = []
        for start, w in windows.items():
            for user, (count, total) in w.items():
                row = {"window_start": start, "user_id": user, "events": count, "spent": total}
                futs.append(await producer.send(out_topic, orjson.dumps(row), key=f"{start}|{user}".encode()))
        await asyncio.gather(*futs)
    finally:
        await consumer.stop()
        await producer.stop()
    return n / (time.perf_counter() - t0), len(futs)
