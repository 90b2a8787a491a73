"""A plain aiokafka consumer of the live input, beside the daemon: how late records reach any reader.

`python -m bench.latency --reference` runs it. For each record it notes when it arrived against
its event time (the moment the producer made it), and keeps the worst delay per second. A window
whose results came late while this reader, with no windows, commits or sinks, also saw records
arrive late was held up between the producer and the readers (the broker, or the machine), not in
the daemon.
"""

from __future__ import annotations

import asyncio
import time

TS = b'"ts":'


class InputDelays:
    def __init__(self) -> None:
        self.worst: dict[int, float] = {}  # second (wall clock) -> worst delay of a record arriving in it

    def worst_between(self, start: float, end: float) -> float:
        return max((d for s, d in self.worst.items() if int(start) <= s <= int(end)), default=0.0)


async def read_input(bootstrap: str, topic: str, partitions: int, delays: InputDelays, stop: asyncio.Event) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await c.start()
    try:
        c.assign([TopicPartition(topic, p) for p in range(partitions)])
        await c.seek_to_beginning()
        while not stop.is_set():
            data = await c.getmany(timeout_ms=50, max_records=20_000)
            now = time.time()
            oldest = None
            for msgs in data.values():
                for m in msgs:  # the event time without decoding the whole record: b'{..,"ts":1234,..}'
                    i = m.value.index(TS) + len(TS)
                    ts = int(m.value[i:m.value.index(b",", i)])
                    if oldest is None or ts < oldest:
                        oldest = ts
            if oldest is not None:
                second = int(now)
                delays.worst[second] = max(delays.worst.get(second, 0.0), now - oldest / 1000)
    finally:
        await c.stop()
