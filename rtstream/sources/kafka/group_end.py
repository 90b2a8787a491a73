"""When a finite (`stop_at_end`) member of a consumer group that owns no partition is done.

With more replicas than partitions, the group gives some of them nothing. Such a replica cannot
see the end of its input through its own fetches, and waiting to be given the partitions after
the others leave depends on the broker rebalancing at once on a LeaveGroup (Tansu waits for the
session timeout) and on every other member leaving at all (a live replica of the group never does).
It is done, as Kafka's own tooling judges a group (`kafka-consumer-groups --describe`: lag 0 on
every partition), when the group's committed offsets have reached the end offsets of every
partition of its topics, both read from the broker. The others wrote and committed everything;
owning nothing, it has nothing it could lose by stopping.
"""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, TopicPartition

CHECK_EVERY = 1.0  # seconds between two asks of the broker while owning nothing


class GroupEnd:
    def __init__(self, consumer: AIOKafkaConsumer):
        self.consumer = consumer
        self._last_check = 0.0
        self.partitions = 0  # how many partitions the last decision covered

    async def reached(self) -> bool:
        """Whether the group has committed the end of every partition of the topics subscribed to
        (asked at most every CHECK_EVERY seconds; False in between)."""
        now = time.monotonic()
        if now - self._last_check < CHECK_EVERY:
            return False
        self._last_check = now
        tps = [TopicPartition(topic, p) for topic in sorted(self.consumer.subscription())
               for p in sorted(self.consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return False  # no metadata yet: nothing is known, so nothing is decided
        ends = await self.consumer.end_offsets(tps)
        # the group's commits, for partitions this member does not own (aiokafka's committed()
        # asks for one partition per request)
        committed = await self.consumer._coordinator.fetch_committed_offsets(tps)
        uncommitted = [tp for tp in tps if tp not in committed or committed[tp].offset < 0]
        # a partition nobody committed is done only if it holds nothing (empty, or all expired)
        beginnings = await self.consumer.beginning_offsets(uncommitted) if uncommitted else {}
        for tp in tps:
            at = beginnings[tp] if tp in beginnings else committed[tp].offset
            if at < ends.get(tp, 0):
                return False
        self.partitions = len(tps)
        return True
