"""Several branches, one window engine each, fed the same batches (a source fans out).

`BranchedEngine` is what the runtime drives in place of one `WindowEngine` (the same calls: assign,
process, close, emitted, snapshot, restore, revoke), and each engine folds its own per-record
stages, aggregate and window. The commit rule stays one: every engine keeps its holds in the one
shared `CommitTracker`, told apart by id (`BranchHolds`: id * 64 + branch), so a partition's safe
position is the minimum over every branch's open and unwritten windows: a position is committed
only once every branch's sinks wrote it.

A batch is decoded once (a record that is not JSON, or not an object, is dead-lettered once, not
once per branch); a record another check refuses in two branches alike (no time field) gives one
letter, not two. A branched flow resumes from its checkpoints (one snapshot of every branch per
partition): the commit never passes the last saved checkpoint (a hold of the engine's own, as
count windows do), since the mark a commit carries can tell only one window's progress.
"""

from __future__ import annotations

import pickle
from collections.abc import Hashable
from collections.abc import Set as AbstractSet
from operator import attrgetter
from typing import Any

import orjson

from rtstream.engine.commit_rule import CommitTracker, DeliveryLedger, Hold, HoldKind
from rtstream.engine.dead_letter import DeadLetter
from rtstream.engine.decode import decoder_for, not_an_object
from rtstream.engine.emission import Emission
from rtstream.engine.window_engine import WindowEngine
from rtstream.model.batch import Batch
from rtstream.model.positions import Mark, PartitionKey
from rtstream.model.record import Record
from rtstream.windows.watermark import WatermarkTracker

SPREAD = 64  # at most this many branches: branch b's hold id i is i * SPREAD + b
AT_CHECKPOINT = Hold(HoldKind.COUNT, 0)


class BranchHolds(CommitTracker):
    """One branch's view of the shared tracker: the same positions, its holds kept apart by id."""

    def __init__(self, shared: CommitTracker, branch: int):
        super().__init__()
        self.shared = shared
        self.branch = branch

    def _own(self, holder: Hold) -> Hold:
        return Hold(holder.kind, holder.id * SPREAD + self.branch)

    def processed(self, pk: PartitionKey, end: int) -> None:
        self.shared.processed(pk, end)

    def hold(self, pk: PartitionKey, holder: Hold, offset: int) -> None:
        self.shared.hold(pk, self._own(holder), offset)

    def release(self, pk: PartitionKey, holder: Hold) -> None:
        self.shared.release(pk, self._own(holder))

    def drop(self, pk: PartitionKey) -> None:
        self.shared.drop(pk)

    def next(self, pk: PartitionKey) -> int | None:
        return self.shared.next(pk)

    def safe(self, pk: PartitionKey, ignoring: AbstractSet[Hold] = frozenset()) -> int | None:
        return self.shared.safe(pk, {self._own(h) for h in ignoring})

    def safe_positions(self, source: str) -> dict[Hashable, int]:
        return self.shared.safe_positions(source)


class BranchLedgers(DeliveryLedger):
    """The marks a commit carries, over every branch: the least written time (a replay from a commit
    without a checkpoint then writes again rather than skips; branched flows resume from checkpoints)."""

    def __init__(self, tracker: CommitTracker, engines: list[WindowEngine]):
        super().__init__(tracker)
        self.engines = engines

    def mark(self, pk: PartitionKey) -> Mark | None:
        marks = [e.ledger.mark(pk) for e in self.engines]
        if any(m is None for m in marks):
            return None
        return Mark(min(m.written_upto for m in marks if m is not None), marks[0].next_offset)  # type: ignore[union-attr]


class BranchedEngine:
    """Duck-types `WindowEngine` for the runtime (rtstream.runtime.branch_build)."""

    def __init__(self, engines: list[WindowEngine], tracker: CommitTracker, own: BranchHolds):
        assert 0 < len(engines) < SPREAD  # one: the branches after one aggregate (a window fan-out)
        self.engines = engines
        self.tracker = tracker
        self._own = own  # the engine's own holds (the last checkpoint's position): branch number len(engines)
        self.ledger = BranchLedgers(tracker, engines)

    # -- partitions: every branch alike --
    def assign(self, pk: PartitionKey, now: float, epoch: int = 0) -> None:
        for e in self.engines:
            e.assign(pk, now, epoch)

    def seed(self, pk: PartitionKey, mark: Mark) -> None:
        for e in self.engines:
            e.seed(pk, mark)

    def adopt_written(self, pk: PartitionKey, mark: Mark) -> bool:
        return bool(self.adopt_marks({pk: mark}))

    def adopt_marks(self, marks: dict[PartitionKey, Mark]) -> set[PartitionKey]:
        return set().union(*[e.adopt_marks(marks) for e in self.engines])  # every branch, not the first only

    def revoke(self, pk: PartitionKey) -> None:
        for e in self.engines:
            e.revoke(pk)

    def finish(self, pk: PartitionKey) -> None:
        for e in self.engines:
            e.finish(pk)

    def owns(self, batch: Batch) -> bool:
        return self.engines[0].owns(batch)

    def owned(self) -> list[PartitionKey]:
        return self.engines[0].owned()

    def partitions(self, source: str) -> list[PartitionKey]:
        return self.engines[0].partitions(source)

    # -- the fold --
    def process(self, batch: Batch, now: float) -> list[DeadLetter]:
        pk = (batch.source, batch.partition)
        if batch.records:
            self._own.hold(pk, AT_CHECKPOINT, batch.records[0].offset)  # kept where a checkpoint holds earlier
        batch, dead = _decoded(batch)
        seen = {_letter_key(d) for d in dead}
        for e in self.engines:
            for d in e.process(batch, now):
                k = _letter_key(d)
                if k not in seen:  # refused alike by two branches (no time field): one letter
                    seen.add(k)
                    dead.append(d)
        return dead

    def close_ready(self, now: float, wall_ms: int, caught_up: bool = True) -> list[Emission]:
        return self._tagged([e.close_ready(now, wall_ms, caught_up) for e in self.engines])

    def close_all(self) -> list[Emission]:
        return self._tagged([e.close_all() for e in self.engines])

    def take_dead(self) -> list[DeadLetter]:
        return [d for e in self.engines for d in e.take_dead()]

    def dead_written(self, dead: list[DeadLetter]) -> None:
        for e in self.engines:
            e.dead_written(dead)

    def take_restored(self) -> list[Emission]:
        return self._tagged([e.take_restored() for e in self.engines])

    def emitted(self, emission: Emission) -> None:
        self.engines[emission.branch].emitted(emission)

    @staticmethod
    def _tagged(lists: list[list[Emission]]) -> list[Emission]:
        out = []
        for b, ems in enumerate(lists):
            for em in ems:
                em.branch = b
                out.append(em)
        return out

    # -- checkpoints: one snapshot of every branch per partition --
    def snapshot(self, pk: PartitionKey) -> tuple[int, bytes] | None:
        snaps = [e.snapshot(pk) for e in self.engines]
        if any(s is None for s in snaps):
            return None
        position = snaps[0][0]  # type: ignore[index]  # the shared tracker's: the same for every branch
        return position, pickle.dumps(("branches", [s[1] for s in snaps]), protocol=pickle.HIGHEST_PROTOCOL)  # type: ignore[index]

    def restore(self, pk: PartitionKey, position: int, blob: bytes, now: float) -> int:
        state = pickle.loads(blob)  # noqa: S301 - our own file under state_dir, see rtstream.runtime.checkpoint_store
        if not (isinstance(state, tuple) and state[0] == "branches" and len(state[1]) == len(self.engines)):
            raise ValueError(f"the checkpoint of {pk[0]}/{pk[1]} was saved by a flow of other branches "
                             "(move state.path aside to start over)")
        n = sum(e.restore(pk, position, b, now) for e, b in zip(self.engines, state[1], strict=True))
        self._own.hold(pk, AT_CHECKPOINT, position)
        return n

    def checkpointed(self, positions: dict[PartitionKey, int]) -> None:
        for e in self.engines:
            e.checkpointed(positions)
        for pk, pos in positions.items():
            if self.tracker.next(pk) is not None:
                self._own.release(pk, AT_CHECKPOINT)
                self._own.hold(pk, AT_CHECKPOINT, pos)

    def checkpoint_saved(self, pk: PartitionKey, position: int, epoch: int | None) -> None:
        for e in self.engines:  # each branch's join and keyed state stop holding commits
            e.checkpoint_saved(pk, position, epoch)

    # -- what the status and the loops read --
    def open_windows(self) -> int:
        return sum(e.open_windows() for e in self.engines)

    @property
    def records_in(self) -> int:
        return self.engines[0].records_in  # every branch reads every record once

    @property
    def watermark(self) -> WatermarkTracker:
        return min((e.watermark for e in self.engines), key=lambda w: w.current)

    @property
    def time_range(self) -> tuple[int, int] | None:
        return self.engines[0].time_range

    @time_range.setter
    def time_range(self, value: tuple[int, int] | None) -> None:
        for e in self.engines:
            e.time_range = value

    def __getattr__(self, name: str) -> Any:
        # the rest (sizes, settings) is the first branch's; the open windows of every branch are listed by
        # rtstream.runtime.open_windows
        return getattr(self.engines[0], name)


def _decoded(batch: Batch) -> tuple[Batch, list[DeadLetter]]:
    """The batch with its values decoded once for every branch, and the records that are not objects."""
    if batch.decoded:
        return batch, []
    loads = decoder_for(map(_value, batch.records))
    records: list[Any] = []
    dead = []
    for rec in batch.records:
        try:
            value = loads(rec.value)
        except orjson.JSONDecodeError as exc:
            dead.append(DeadLetter("decode", f"invalid JSON: {exc}", batch.source, batch.partition, rec.offset,
                                   value=rec.value))
            continue
        if value.__class__ is not dict:
            dead.append(DeadLetter("decode", not_an_object(value), batch.source,
                                   batch.partition, rec.offset, value=rec.value))
            continue
        records.append(Record(value, rec.offset, rec.timestamp, rec.key))
    read = batch.read if batch.read is not None else len(batch.records)
    return Batch(batch.source, batch.partition, records, batch.end, True, batch.epoch, batch.key_field, read), dead


def _letter_key(d: DeadLetter) -> tuple[Any, ...]:
    return (d.reason, d.detail, d.source, d.partition, d.offset, d.stage, d.window)


_value = attrgetter("value")
