"""The end-of-input decision across a rebalance: a decision that spans a change of assignment is
void. The interleaving is forced (a consumer whose end_offsets gives the partition back at its
commit while `reached` awaits it); the broker-level behaviour is in
tests/integration/test_kafka_end_of_input.py."""

from __future__ import annotations

import random

from aiokafka import TopicPartition

from rtstream.sources.kafka.end import EndOfInput

TP = TopicPartition("t", 0)


class Rebalancing:
    """Stands in for the consumer: 100 records in the partition, all read; when told to, an
    end_offsets call lets a revoke and a new assignment of the same partition run first (the
    next owner, or this one again, starts over from the commit at 50)."""

    def __init__(self) -> None:
        self.position = {TP: 100}
        self.end: EndOfInput | None = None
        self.rebalance_in_call: int | None = None
        self.calls = 0

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def highwater(self, tp: TopicPartition) -> int:
        return 100

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.calls += 1
        if self.calls == self.rebalance_in_call:
            assert self.end is not None
            self.end.changing()  # revoke
            self.position[TP] = 50
            self.end.changing()  # assigned again, set up from the commit
            await self.end.assigned([TP])
        return dict.fromkeys(tps, 100)


async def _reached_after(rebalance_in_call: int | None) -> tuple[bool, bool]:
    consumer = Rebalancing()

    end = EndOfInput("src", consumer, nothing_assigned_is_done=False)  # type: ignore[arg-type]
    consumer.end = end
    await end.assigned([TP])
    consumer.rebalance_in_call = rebalance_in_call
    first = await end.reached({}, dict(consumer.position))
    again = await end.reached({}, dict(consumer.position))  # the next round sees the position the new setup decided
    return first, again


async def test_without_a_rebalance_the_end_is_decided():
    assert await _reached_after(None) == (True, True)


async def test_a_rebalance_while_asking_the_broker_voids_the_decision():
    # call 1 is assigned()'s snapshot; call 2 the fresh end offset reached() asks for
    first, again = await _reached_after(2)
    assert first is False  # decided on the position read before the rebalance: 100, but reading resumes at 50
    assert again is False  # at 50 of 100: not the end


class SkippingInTheBackground(Rebalancing):
    """A record at 99 the fetcher cannot read: it moves the position past it in the background
    while the end offsets are asked for, and would raise its error only on the next fetch."""

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.calls += 1
        if self.calls == 2:
            self.position[TP] = 100
        return dict.fromkeys(tps, 100)


async def test_a_position_that_moves_on_in_the_background_does_not_end_the_input():
    consumer = SkippingInTheBackground()
    consumer.position[TP] = 99
    end = EndOfInput("src", consumer, nothing_assigned_is_done=False)  # type: ignore[arg-type]
    await end.assigned([TP])
    assert await end.reached({}, {TP: 99}) is False  # decided on what was handed out, read with the fetch


async def test_a_true_answer_always_means_the_position_is_at_the_end():
    """Randomized: rebalances at random broker calls, the partition read again from 50 afterwards
    (a batch of data a round); whenever reached() says True, reading is at the end."""
    for seed in range(200):
        rnd = random.Random(seed)
        consumer = Rebalancing()

        end = EndOfInput("src", consumer, nothing_assigned_is_done=False)  # type: ignore[arg-type]
        consumer.end = end
        await end.assigned([TP])
        consumer.rebalance_in_call = consumer.calls + rnd.randint(1, 3)
        for _round in range(10):
            data: dict[TopicPartition, list[int]] = {}
            if consumer.position[TP] < 100:
                consumer.position[TP] = min(100, consumer.position[TP] + rnd.choice((10, 25, 50)))
                data = {TP: [consumer.position[TP] - 1]}
            if await end.reached(data, dict(consumer.position)):
                assert consumer.position[TP] == 100, f"seed {seed}: ended at {consumer.position[TP]}"
                break
        else:
            raise AssertionError(f"seed {seed}: never ended")
