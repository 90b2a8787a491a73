"""The start-up race that dropped a fetched batch, forced deterministically against the real broker.

A fetch that began before the group assigned the partitions returns while the assignment's setup is
still awaiting the broker. The setup must decide each start position from the commit or `start`,
never from `consumer.position()` (which that fetch has already moved), and the early fetch must be
read again from the decided start. The test holds the setup's broker calls until that fetch has
returned, then checks that the source hands out every offset exactly once.
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path
from typing import Any

import pytest

from rtstream.runtime.context import Context
from rtstream.sources.kafka.source import KafkaSource
from tests.kafka_helpers import new_topics, produce

PARTITIONS = 3
PER_PARTITION = 1200
MAX_BATCH = 400


def _source(bootstrap: str, topic: str, group: str, state_dir: Path, **extra: Any) -> KafkaSource:
    config = KafkaSource.Config(type="kafka", bootstrap_servers=bootstrap, topics=[topic], group_id=group,
                                start="earliest", stop_at_end=True, max_batch=MAX_BATCH,
                                consumer={"session_timeout_ms": 6000, "heartbeat_interval_ms": 300}, **extra)
    return KafkaSource("events", config, Context(pipeline="race", state_dir=state_dir))


def _hold_setup_until_fetched(source: KafkaSource, held: list[str], rng: random.Random | None = None) -> None:
    """Make the setup's broker calls wait until a fetch has handed out records (bounded wait)."""
    consumer = source.consumer
    assert consumer is not None
    fetched = asyncio.Event()
    real_getmany, real_end, real_begin = consumer.getmany, consumer.end_offsets, consumer.beginning_offsets

    async def getmany(*args: Any, **kw: Any) -> Any:
        data = await real_getmany(*args, **kw)
        if any(data.values()):
            fetched.set()
        return data

    async def held_call(real: Any, name: str, *args: Any) -> Any:
        if not fetched.is_set():
            try:
                await asyncio.wait_for(fetched.wait(), 15)
                held.append(name)
            except TimeoutError:
                pass
        if rng is not None:
            await asyncio.sleep(rng.uniform(0, 0.3))
        return await real(*args)

    consumer.getmany = getmany  # type: ignore[method-assign]
    consumer.end_offsets = lambda *a: held_call(real_end, "end_offsets", *a)  # type: ignore[method-assign]
    consumer.beginning_offsets = lambda *a: held_call(real_begin, "beginning_offsets", *a)  # type: ignore[method-assign]


async def _read_everything(source: KafkaSource) -> dict[int, list[int]]:
    offsets: dict[int, list[int]] = {}
    async with asyncio.timeout(90):
        async for batch in source.batches():
            offsets.setdefault(batch.partition.partition, []).extend(r.offset for r in batch.records)  # type: ignore[attr-defined]
    return offsets


def _run_once(kafka: Any, tmp_path: Path, rng: random.Random | None = None) -> tuple[dict[int, list[int]], list[str]]:
    topic, _, group = new_topics(kafka.bootstrap, PARTITIONS)
    return asyncio.run(_read_topic(kafka, topic, group, tmp_path, rng))


async def _read_topic(kafka: Any, topic: str, group: str, tmp_path: Path,
                      rng: random.Random | None) -> tuple[dict[int, list[int]], list[str]]:
    await produce(kafka.bootstrap, topic, [{"i": i, "user_id": f"u{i % 37}"} for i in range(PARTITIONS * PER_PARTITION)],
                  key="user_id")
    source = _source(kafka.bootstrap, topic, group, tmp_path)
    await source.start()
    held: list[str] = []
    try:
        _hold_setup_until_fetched(source, held, rng)
        return await _read_everything(source), held
    finally:
        await source.close()


def _assert_exact(offsets: dict[int, list[int]]) -> None:
    total = sum(len(v) for v in offsets.values())
    assert total == PARTITIONS * PER_PARTITION, {p: len(v) for p, v in offsets.items()}
    for p, seen in offsets.items():
        assert seen == list(range(len(seen))), f"partition {p}: not every offset once, in order"


def test_a_fetch_that_returns_during_the_assignment_setup_is_read_again_from_the_decided_start(kafka, tmp_path):
    offsets, held = _run_once(kafka, tmp_path)
    assert held, "the interleaving was not forced: no fetch returned while the setup was held"
    _assert_exact(offsets)


@pytest.mark.parametrize("run", range(3))
def test_randomized_setup_delays_lose_nothing(kafka, tmp_path, run):
    """The same, with random delays in the setup's broker calls; a failure names its seed, and
    RTSTREAM_RACE_SEED=<seed> replays it."""
    seed = int(os.environ.get("RTSTREAM_RACE_SEED", random.randrange(1 << 30)))
    offsets, _ = _run_once(kafka, tmp_path, random.Random(seed))
    try:
        _assert_exact(offsets)
    except AssertionError as exc:
        raise AssertionError(f"seed {seed} (replay: RTSTREAM_RACE_SEED={seed}): {exc}") from None


class RecordingPartitions:
    """The pipeline's side of an assignment, as the source sees it: which partitions, at which epoch."""

    def __init__(self) -> None:
        self.epochs: dict[Any, int] = {}

    async def assigned(self, assignment: Any) -> dict[Any, int]:
        for tp in assignment.starts:
            self.epochs[tp] = assignment.epoch
        return dict(assignment.starts)

    async def revoked(self, source: str, partitions: list[Any]) -> None:
        for tp in partitions:
            self.epochs.pop(tp, None)


def test_an_assignment_setup_that_fails_is_tried_again_and_every_batch_is_owned(kafka, tmp_path):
    """A broker that is restarting fails the setup's requests: the setup is tried again, so the
    pipeline learns of every partition, and no batch arrives for a partition it was not told of."""
    topic, _, group = new_topics(kafka.bootstrap, PARTITIONS)

    async def scenario() -> tuple[dict[int, list[int]], list[str]]:
        await produce(kafka.bootstrap, topic, [{"i": i, "user_id": f"u{i % 37}"} for i in range(PARTITIONS * 400)])
        source = _source(kafka.bootstrap, topic, group, tmp_path)
        events = RecordingPartitions()
        source.context.partitions = events
        await source.start()
        failures: list[str] = []
        assert source.consumer is not None
        real = source.consumer.beginning_offsets

        async def flaky(*args: Any) -> Any:
            if len(failures) < 2:
                failures.append("refused")
                raise ConnectionError("the broker is restarting")
            return await real(*args)

        source.consumer.beginning_offsets = flaky  # type: ignore[method-assign]
        offsets: dict[int, list[int]] = {}
        try:
            async with asyncio.timeout(90):
                async for batch in source.batches():
                    assert events.epochs.get(batch.partition) == batch.epoch, "a batch of a partition not set up"
                    offsets.setdefault(batch.partition.partition, []).extend(r.offset for r in batch.records)
        finally:
            await source.close()
        return offsets, failures

    offsets, failures = asyncio.run(scenario())
    assert failures == ["refused", "refused"]
    assert sum(len(v) for v in offsets.values()) == PARTITIONS * 400
    assert all(seen == list(range(len(seen))) for seen in offsets.values())
