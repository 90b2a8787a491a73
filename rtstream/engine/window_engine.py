"""The window engine: partitions in, emissions out. Its jobs live beside it:

- rtstream.engine.fold     folding a batch into open windows (the hot path)
- rtstream.engine.closing  closing windows and emitting them
- rtstream.engine.partition_snapshot checkpoint snapshots and restore
- rtstream.engine.commit_rule   what writing an emission releases (the commit rule)
- rtstream.engine.count_fold     count windows, over the fold, the closing and the snapshots
"""

from __future__ import annotations

from rtstream.engine.commit_rule import Hold, HoldKind
from rtstream.engine.count_fold import CountFold
from rtstream.engine.dead_letter import DeadLetter
from rtstream.engine.emission import Emission
from rtstream.engine.released import DEAD_PENDING
from rtstream.model.batch import Batch
from rtstream.model.positions import Mark, PartitionKey
from rtstream.windows.watermark import NEVER

__all__ = ["Emission", "WindowEngine"]


class WindowEngine(CountFold):
    def assign(self, pk: PartitionKey, now: float, epoch: int = 0) -> None:
        self._epochs[pk] = epoch
        self.watermark.assign(pk, now)
        for step in self.steps:
            step.assigned(pk)

    def seed(self, pk: PartitionKey, mark: Mark) -> None:
        """Resume a partition from a commit that carried `mark` (see rtstream.model.positions.Mark)."""
        self._seeds[pk] = mark
        self.ledger.seed(pk, mark[0])
        self._emitted_upto[pk] = max(self._emitted_upto.get(pk, NEVER), mark[0])

    def revoke(self, pk: PartitionKey) -> None:
        """Drop a partition's open state without emitting it; its next owner replays it."""
        self._epochs.pop(pk, None)
        self.ledger.forget(pk)
        self._seeds.pop(pk, None)
        for start in self.store.drop(pk):
            self.tracker.release(pk, Hold(HoldKind.OPEN, start))
        if self.sessions is not None:
            self.sessions.drop(pk)
        self.revoke_counts(pk)
        for step in self.steps:
            step.forget(pk)
        self.watermark.forget(pk)
        self.tracker.drop(pk)
        self._emitted_upto.pop(pk, None)

    def finish(self, pk: PartitionKey) -> None:
        """A finite partition has nothing more: it stops holding the watermark back."""
        self.watermark.forget(pk)
        for step in self.steps:
            step.finished(pk)

    def take_dead(self) -> list[DeadLetter]:
        """The refusals of rows a step let go while closing (rtstream.engine.released)."""
        out, self.released_dead = self.released_dead, []
        self.dead_taken.extend(out)
        return out

    def dead_written(self, dead: list[DeadLetter]) -> None:
        """Those refusals are in the dead-letter file: their partitions may commit past them, not past
        one refused since (a later close) or taken and not written (another branch's, given its own)."""
        written = {id(d) for d in dead}
        self.dead_taken = [d for d in self.dead_taken if id(d) not in written]
        for pk in {(d.source, d.partition) for d in dead}:
            self.tracker.release(pk, DEAD_PENDING)  # type: ignore[arg-type]
            pending = [d.offset for d in (*self.released_dead, *self.dead_taken)
                       if (d.source, d.partition) == pk and d.offset is not None]
            if pending and pk in self._epochs:
                self.tracker.hold(pk, DEAD_PENDING, min(pending))  # type: ignore[arg-type]

    def open_windows(self) -> int:
        if self.counts is not None:
            return self.counts.open_count()
        return self.sessions.open_count() if self.sessions is not None else self.store.open_windows()

    def partitions(self, source: str) -> list[PartitionKey]:
        return [pk for pk in self._epochs if pk[0] == source]

    def owns(self, batch: Batch) -> bool:
        return self._epochs.get((batch.source, batch.partition)) == batch.epoch

    def owned(self) -> list[PartitionKey]:
        return list(self._epochs)

    def emitted(self, emission: Emission) -> None:
        """The sinks have the window (see DeliveryLedger.emitted)."""
        self.ledger.emitted(emission, self._epochs.keys())
