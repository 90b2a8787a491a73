"""State that stages keep between records (joins, per-key state), and how it meets the commit rule.

A stateful step runs in the fold like a per-record stage, but it is told each record's partition and
position (`at`). Every row it keeps holds its partition's commit (rtstream.engine.commit_rule) until
the row is evicted or a saved checkpoint covers it: a restart without the checkpoint replays it from
the commit, so no match, table entry or state update is lost. The engine calls the other hooks:
`evict` after each watermark advance, `snapshot`/`restore` with the partition's checkpoint, `saved`
once that checkpoint is on disk, `drop` on revoke. Pure: no I/O, no await.
"""

from __future__ import annotations

import itertools
import sys
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from rtstream.engine.commit_rule import CommitTracker, Hold, HoldKind
from rtstream.model.positions import PartitionKey
from rtstream.windows.clock import MAX_MS, MIN_MS, epoch_ms
from rtstream.windows.watermark import WatermarkTracker

_ids = itertools.count(1)
TimeOf = Callable[[Any, dict[str, Any]], int]


def event_time(time_mode: str, time_field: str) -> TimeOf:
    """The record's time in epoch ms as the pipeline reads it; raises ValueError when it has none."""
    if time_mode == "event":
        def of_value(rec: Any, v: dict[str, Any]) -> int:
            t = v.get(time_field)
            if t.__class__ is int and 100_000_000_000 <= t < 100_000_000_000_000:
                return t  # type: ignore[no-any-return]
            if t is None:
                raise ValueError(f"missing time field {time_field!r}")
            return epoch_ms(t)
        return of_value

    def of_record(rec: Any, v: dict[str, Any]) -> int:
        given = rec.timestamp
        if given is None or not MIN_MS <= given <= MAX_MS:
            raise ValueError(f"the source gave this record no usable timestamp ({given!r})")
        return given  # type: ignore[no-any-return]
    return of_record


def scalar_key(value: Any, field: str) -> Any:
    """A state key: a scalar field of the row (dicts and lists cannot be keys). Values are keys of their
    own kind, as the joins' (rtstream.engine.join_keys): `true` is not `1`."""
    key = value.get(field)
    if key is None:
        raise ValueError(f"missing key field {field!r}")
    if key.__class__ in (dict, list):
        raise ValueError(f"key field {field!r} must be a scalar, got {type(key).__name__}")
    return ("bool", key) if key.__class__ is bool else key


def size_of(value: Any) -> int:
    """A cheap size estimate of a row in bytes (the dict and its top-level keys and values)."""
    if value.__class__ is dict:
        return sys.getsizeof(value) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in value.items())
    return sys.getsizeof(value)


class StatefulStep:
    """The base of every stateful stage's engine side: the commit holds of the rows it keeps."""

    name: str
    stateful = True
    sides: tuple[str, ...] = ()  # the sources a join matches (none for a keyed stage)

    def __init__(self, name: str):
        self.name = name
        self.hold = Hold(HoldKind.STATE, next(_ids))
        self.tracker = CommitTracker()  # replaced by the engine's own in `bind`
        self.time_of: TimeOf = event_time("event", "ts")
        self.size_ms = self.hop_ms = 60_000  # the pipeline's windows, set in `bind`
        self.time_field = "ts"
        self._saved: dict[PartitionKey, int] = {}  # position covered by the last saved checkpoint
        self._dirty: set[PartitionKey] = set()
        # windows ending by this time are written, per partition (the engine's DeliveryLedger; None:
        # not owned, or nothing written yet): an interval join's pairs owe their rows until then
        self.written: Callable[[PartitionKey], int | None] = lambda pk: None

    def bind(self, tracker: CommitTracker, time_of: TimeOf, size_ms: int, hop_ms: int) -> None:
        self.tracker = tracker
        self.time_of = time_of
        self.size_ms, self.hop_ms = size_ms, hop_ms

    # -- what a subclass implements --------------------------------------------------------------
    def at(self, pk: PartitionKey, rec: Any, value: dict[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def evict_before(self, watermark: int) -> None:
        """Forget what no record at or after `watermark` can use any more."""

    def lowest(self, pk: PartitionKey, floor: int) -> int | None:
        """The lowest source offset of `pk`, at or after `floor`, whose row is still kept."""
        raise NotImplementedError

    def snapshot(self, pk: PartitionKey) -> Any:
        raise NotImplementedError

    def restore(self, pk: PartitionKey, state: Any) -> None:
        raise NotImplementedError

    def drop(self, pk: PartitionKey) -> None:
        raise NotImplementedError

    def figures(self) -> tuple[int, int, int]:
        """(rows, keys, bytes estimate) of the state."""
        raise NotImplementedError

    def assigned(self, pk: PartitionKey) -> None:
        """`pk` is now read here (a step that waits for a side's watermark needs its partitions)."""

    def finished(self, pk: PartitionKey) -> None:
        """`pk` has nothing more (a finite source at its end): it holds no watermark back."""

    # -- the engine's hooks ----------------------------------------------------------------------
    def evict(self, wm: WatermarkTracker) -> None:
        self.evict_before(wm.current)
        for pk in self._dirty:
            self._rehold(pk)
        self._dirty.clear()

    def saved(self, pk: PartitionKey, position: int) -> None:
        """A checkpoint of `pk` covering every offset before `position` is on disk."""
        self._saved[pk] = position
        self._rehold(pk)

    def forget(self, pk: PartitionKey) -> None:
        self.drop(pk)
        self._saved.pop(pk, None)
        self._dirty.discard(pk)
        self.tracker.release(pk, self.hold)

    def restored(self, pk: PartitionKey, state: Any, position: int) -> None:
        self.restore(pk, state)
        self._saved[pk] = position  # what the checkpoint holds is on disk already
        self._rehold(pk)

    # -- for subclasses ----------------------------------------------------------------------------
    def kept(self, pk: PartitionKey, offset: int) -> None:
        """A row of `pk` at `offset` is now kept: it holds the commit unless a checkpoint covers it."""
        if offset >= self._saved.get(pk, -1):
            self.tracker.hold(pk, self.hold, offset)

    def let_go(self, pk: PartitionKey) -> None:
        """A row of `pk` was evicted or replaced: its hold is recomputed after this pass."""
        self._dirty.add(pk)

    def _rehold(self, pk: PartitionKey) -> None:
        self.tracker.release(pk, self.hold)
        low = self.lowest(pk, -1)
        if low is not None:
            # a row a saved checkpoint covers is safe only while a restart uses that checkpoint, and
            # a restart replays from the commit, without it, once the commit has passed it: so the
            # commit stops at the checkpoint's position while any row before it is kept
            saved = self._saved.get(pk, -1)
            self.tracker.hold(pk, self.hold, saved if low < saved else low)


class LiveOffsets:
    """The offsets of one partition's kept rows, added in offset order: the lowest one still kept in
    amortized O(1) (a row let go is only marked, and skipped once it reaches the front)."""

    __slots__ = ("queue", "gone")

    def __init__(self) -> None:
        self.queue: deque[int] = deque()
        self.gone: set[int] = set()

    def add(self, offset: int) -> None:
        self.queue.append(offset)

    def remove(self, offset: int) -> None:
        if self.queue and offset >= self.queue[0]:
            self.gone.add(offset)

    def lowest(self, floor: int) -> int | None:
        q, gone = self.queue, self.gone
        while q and (q[0] in gone or q[0] < floor):  # below the floor a saved checkpoint holds it
            gone.discard(q.popleft())
        return q[0] if q else None


def bind_steps(engine: Any, record_stages: Iterable[Any]) -> tuple[list[StatefulStep], dict[str, Any], TimeOf | None]:
    """The stateful steps among `record_stages`, bound to the engine's commit tracker, time and
    windows; per source, what takes its null values (a table join's tombstones); and, when there are
    steps, how the fold reads an input record's time: with state between records, a partition's
    watermark follows the times of its own records, not those of the rows the state makes (an
    interval join's pair carries the later row's time, which may be the other side's)."""
    steps: list[StatefulStep] = []
    tombstones: dict[str, Any] = {}
    for stage in record_stages:
        step = getattr(stage, "stateful_step", None)
        if isinstance(step, StatefulStep):
            step.bind(engine.tracker, event_time(engine.time_mode, engine.time_field), engine.size_ms, engine.hop_ms)
            step.time_field = engine.time_field
            step.written = engine.ledger.written.get
            steps.append(step)
            for source, take in getattr(step, "takes_nulls", {}).items():
                tombstones[source] = take
    return steps, tombstones, event_time(engine.time_mode, engine.time_field) if steps else None
