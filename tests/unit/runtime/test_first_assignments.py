"""PartitionLifecycle takes the journaled marks once every source has had its first start or
assignment (rtstream.runtime.partitions): a Kafka source's assignment that arrives before another
source's checkpoint is back waits for it, and a partition revoked meanwhile takes none."""

import asyncio

from rtstream.engine.commit_rule import CommitTracker
from rtstream.model.batch import Batch
from rtstream.model.positions import Assignment, Mark
from rtstream.runtime.partitions import PartitionLifecycle
from tests.unit.engine.test_engine import BASE, MIN, batch, engine


class Journal:
    def __init__(self, marks):
        self.marks = marks

    def mark(self, source, partition):
        return self.marks.get((source, partition))


class Committer:
    def __init__(self, marks):
        self.journal = Journal(marks)

    async def commit_revoked(self, source, partitions):
        return None


class Checkpoints:
    """b's checkpoint holds window 00:00 open."""

    def __init__(self):
        t = CommitTracker()
        e = engine(t)
        e.assign(("b", 0), 0)
        e.process(Batch("b", 0, batch(0, [("x", 1000)]).records, 1, decoded=True), 0)
        t.processed(("b", 0), 1)
        self.b = e.snapshot(("b", 0))

    def load(self, scope, partitions):
        return {0: self.b} if scope == "b@g" else {}


def lifecycle(marks):
    t = CommitTracker()
    e = engine(t)
    return PartitionLifecycle(e, Committer(marks), Checkpoints(), {"a": "a@g", "b": "b@g"}), e  # type: ignore[arg-type]


def test_a_mark_waits_for_every_sources_first_assignment_and_spares_the_window_it_brings_back():
    """a's mark says 00:00 and 00:01 were written; b's checkpoint, back after a's assignment, holds 00:00
    open. Taken at a's assignment, a dropped its share of 00:00 and b's was written alone."""
    async def run():
        lc, e = lifecycle({("a", 0): Mark(BASE + 2 * MIN, 5)})
        await lc.assigned(Assignment("a", 1, {0: 1}))
        assert ("a", 0) not in e._seeds  # b has not started: a's mark waits
        waiting = asyncio.create_task(lc.every_source_started())
        await asyncio.sleep(0.01)
        assert not waiting.done()
        assert await lc.assigned(Assignment("b", 1, {0: 0}, resumable={0})) == {0: 1}  # from its checkpoint
        await asyncio.wait_for(waiting, 5)
        return e

    e = asyncio.run(run())
    assert e._seeds[("a", 0)].written_upto == BASE + MIN - 1  # 00:00 spared: written again whole
    assert e.open_windows() == 1


def test_an_empty_first_assignment_counts_and_a_partition_revoked_meanwhile_takes_no_mark():
    async def run():
        lc, e = lifecycle({("a", 0): Mark(BASE + MIN, 5)})
        await lc.assigned(Assignment("a", 1, {0: 1}))
        await lc.revoked("a", [0])
        await lc.assigned(Assignment("b", 1, {}))  # another member has all of b's partitions
        await asyncio.wait_for(lc.every_source_started(), 5)
        return e

    assert ("a", 0) not in asyncio.run(run())._seeds
