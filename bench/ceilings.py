"""What the hardware and libraries allow, measured in the same run as rtstream, for the ratios.

- raw: an aiokafka design with nothing else: getmany + orjson + a dict aggregate + producing results,
  reading every partition by manual assignment (no consumer group, so no join wait), as in the issue.
- cpu: records already in memory: orjson + a dict aggregate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from operator import itemgetter

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

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
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, fetch_max_wait_ms=10)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    t0 = time.perf_counter()
    await consumer.start()
    await producer.start()
    await consumer.topics()  # fresh metadata
    consumer.assign([TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())])
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


if __name__ == "__main__":  # the raw loop in a fresh process of its own: python -m bench.ceilings BOOTSTRAP TOPIC N
    import sys

    asyncio.run(raw_ceiling(sys.argv[1], sys.argv[2], f"raw-{sys.argv[2]}", int(sys.argv[3])))
