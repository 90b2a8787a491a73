"""When a finite Kafka run (`stop_at_end`) has read everything there is.

A partition is at its end when its position has reached the end-offsets snapshot taken at
assignment, the high watermark of its last fetch, and a fresh end-offsets answer. The position is
the consumer's fetch position, which moves past transaction markers and compacted-away offsets
(the offset after the last record read would stay short of the end there for good). Where the
broker's end offsets agree with what was fetched, that is enough: the end is decided one fetch round
after the last record. Some brokers report end offsets short for a while (Tansu after batched
produces); once a fresh end offset is seen behind a position already fetched, the run also waits
for a few empty rounds and a quiet second, and says so once in the log.

A group member given no partition is finished once the group's committed offsets reach the end
of every partition of its topics (rtstream.sources.kafka.group_end); a static reader given none has
nothing to read.

A rebalance (or a static setup) may move a partition back to its committed offset while `reached`
awaits the broker: every change of assignment starts a new generation, and a decision taken across
one is thrown away, never trusted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from rtstream.sources.kafka.group_end import GroupEnd

log = logging.getLogger("rtstream.source.kafka")
EMPTY_ROUNDS_AT_END = 3
QUIET_AT_END = 1.0  # seconds without data before a partition at its end offset counts as finished


class EndOfInput:
    def __init__(self, name: str, consumer: AIOKafkaConsumer, *, nothing_assigned_is_done: bool,
                 joined: Callable[[], bool] = lambda: True):
        self.name = name
        self.consumer = consumer
        self.nothing_assigned_is_done = nothing_assigned_is_done  # static: an empty share has nothing to read
        self.joined = joined  # group mode: an empty assignment means something only once the group answered
        self._group_end = GroupEnd(consumer)
        self.idle = False  # finished owning nothing (for the log line)
        self._ends: dict[TopicPartition, int] = {}
        self._empty_rounds: dict[TopicPartition, int] = {}
        self._last_data: dict[TopicPartition, float] = {}
        self._assigned_at = time.monotonic()
        self._done: set[TopicPartition] = set()
        self._cautious = False
        self._generation = 0

    def changing(self) -> None:
        """The assignment is about to change (called before any await of a revoke or a setup): what was
        decided before is void, and so is any `reached` awaiting the broker meanwhile."""
        self._generation += 1
        self._done.clear()

    async def assigned(self, tps: list[TopicPartition]) -> None:
        self._assigned_at = time.monotonic()
        self._ends.update(await self.consumer.end_offsets(tps))
        for tp in tps:
            self._empty_rounds[tp] = 0

    def finished(self) -> str:
        """The log line's reason once `reached` said yes."""
        if self.idle:
            return (f"owns no partition and the group has committed the end of every partition of its topics "
                    f"({self._group_end.partitions}, read from the broker): nothing left to read")
        return f"reached the end of every assigned partition, {self.since_last_record():.2f}s after the last record"

    def since_last_record(self) -> float:
        return time.monotonic() - max(self._last_data.values(), default=self._assigned_at)

    async def reached(self, data: dict[TopicPartition, list[Any]], positions: dict[TopicPartition, int | None]) -> bool:
        """Whether every assigned partition is at its end, given the last fetch's `data` and the
        positions read with it, before any await (None: no start decided yet). Read later, a
        position could have moved on in the background past a record never handed out (aiokafka
        skips an unreadable one that way, and raises its error only on the next fetch)."""
        generation = self._generation
        assignment = self.consumer.assignment()
        if not assignment:
            if self.nothing_assigned_is_done:
                return True
            if not self.joined() or not await self._group_end.reached():
                return False
            self.idle = generation == self._generation
            return self.idle
        now = time.monotonic()
        for tp in assignment:
            if tp in self._done:
                continue
            if data.get(tp):
                self._empty_rounds[tp] = 0
                self._last_data[tp] = now
                continue
            pos = positions.get(tp)
            if pos is None:
                continue
            highwater = self.consumer.highwater(tp)
            if highwater is None or pos < max(self._ends.get(tp, 0), highwater):
                continue  # no fetch has answered for it yet, or it is not at the end
            self._empty_rounds[tp] = self._empty_rounds.get(tp, 0) + 1
            if not self._cautious:
                fresh = (await self.consumer.end_offsets([tp])).get(tp, 0)
                if generation != self._generation:
                    return False
                if fresh == pos == highwater:
                    self._done.add(tp)
                    continue
                if fresh < pos:
                    self._cautious = True
                    log.info("%s: the broker reports the end of %s:%d at %d, behind the %d records already read; "
                             "deciding the end of input by a quiet period as well", self.name, tp.topic,
                             tp.partition, fresh, pos, extra={"component": self.name})
                continue
            quiet = now - self._last_data.get(tp, self._assigned_at) >= QUIET_AT_END
            if self._empty_rounds[tp] >= EMPTY_ROUNDS_AT_END and quiet:
                fresh = (await self.consumer.end_offsets([tp])).get(tp, 0)
                if generation != self._generation:
                    return False
                log.debug("%s: %s at %d: end snapshot %s, highwater %s, end now %s", self.name, tp, pos,
                          self._ends.get(tp), highwater, fresh)
                if pos >= fresh:
                    self._done.add(tp)
                else:
                    self._empty_rounds[tp] = 0
        return generation == self._generation and all(tp in self._done for tp in assignment)
