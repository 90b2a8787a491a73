"""The commit rule, in one place: written -> safe to commit -> committed.

A source position is committed only once every record before it is written by every sink or
dead-lettered. Per partition, the safe position is the smallest of: where processing has reached,
and the first offset of every window share that is still open or waiting for the sinks (a hold).
It is a low-watermark, so commits never run ahead of a slow window, whatever order windows finish in.

- `CommitTracker` keeps the holds and the processed positions.
- `DeliveryLedger` follows the closed windows on their way to the sinks: which are pending, which
  are written, and the marks a commit carries (see `Mark`).
- `Committer` turns that into commits: periodically, on revoke, at shutdown; or, for a sink that
  commits source offsets in its own transactions (Kafka `exactly_once`), a `WindowCommit` that the
  flusher hands the sink with the window, and confirms once the transaction went through.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from collections.abc import Set as AbstractSet
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple

from rtstream.model.positions import Mark, PartitionKey
from rtstream.windows.watermark import NEVER

if TYPE_CHECKING:
    from rtstream.engine.emission import Emission
    from rtstream.model.window import Window



class HoldKind(Enum):
    OPEN = "open"  # a tumbling or hopping window still open; id = its start
    SESSION = "session"  # a session still open; id = the session's id
    EMIT = "emit"  # a closed window on its way to the sinks; id = the emission's id
    COUNT = "count"  # an unfinished count window (id = its id), or the last checkpoint's position (id 0)
    STATE = "state"  # rows a join or keyed stage keeps (rtstream.engine.stateful); id = the stage's


class Hold(NamedTuple):
    kind: HoldKind
    id: int


class CommitTracker:
    def __init__(self) -> None:
        self._next: dict[PartitionKey, int] = {}
        self._holds: dict[PartitionKey, dict[Hold, int]] = {}

    def processed(self, pk: PartitionKey, end: int) -> None:
        """Every record of `pk` before `end` is now in a window or in dead letters."""
        self._next[pk] = end

    def hold(self, pk: PartitionKey, holder: Hold, offset: int) -> None:
        holds = self._holds.setdefault(pk, {})
        if holder not in holds or offset < holds[holder]:
            holds[holder] = offset

    def release(self, pk: PartitionKey, holder: Hold) -> None:
        holds = self._holds.get(pk)
        if holds is not None:
            holds.pop(holder, None)

    def drop(self, pk: PartitionKey) -> None:
        self._next.pop(pk, None)
        self._holds.pop(pk, None)

    def next(self, pk: PartitionKey) -> int | None:
        return self._next.get(pk)

    def safe(self, pk: PartitionKey, ignoring: AbstractSet[Hold] = frozenset()) -> int | None:
        """The position to commit; `ignoring` holders: as it will be once they are released."""
        nxt = self._next.get(pk)
        if nxt is None:
            return None
        holds = self._holds.get(pk)
        if not holds:
            return nxt
        return min(nxt, min((off for h, off in holds.items() if h not in ignoring), default=nxt))

    def safe_positions(self, source: str) -> dict[Hashable, int]:
        out = {}
        for pk in self._next:
            if pk[0] == source:
                pos = self.safe(pk)
                if pos is not None:
                    out[pk[1]] = pos
        return out


class DeliveryLedger:
    """The closed windows between the engine and the sinks, and what their writing releases.

    A close of the watermark may emit several windows; the close's marks ride on the last of them.
    A written window keeps holding its partitions' commits until that last one is written too: a
    commit past its records before then would carry an older mark, and a replay from it would emit
    the window again in pieces.
    """

    def __init__(self, tracker: CommitTracker):
        self.tracker = tracker
        self.written: dict[PartitionKey, int] = {}  # windows ending by here are written, per partition
        self.pending: dict[int, Emission] = {}  # final emissions handed to the sinks, not yet written
        self.unreleased: list[Emission] = []  # written, still holding commits until their close is written
        self.inflight = 0
        self.last: Emission | None = None
        self._next_id = 0

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def handed(self, em: Emission, *, final: bool = True) -> None:
        """`em` is on its way to the sinks (a running result is not `final`: it releases nothing)."""
        self.inflight += 1
        if final:
            self.pending[em.id] = em
        self.last = em

    def settle(self, owned: Iterable[PartitionKey], marks: dict[PartitionKey, int], emissions: list[Emission]) -> None:
        """The marks of a close hold once every emission up to it is written (flushes go in order)."""
        if emissions:
            emissions[-1].marks = marks
        elif self.inflight and self.last is not None:
            self.last.marks = marks
        else:
            for pk, m in marks.items():
                self.written[pk] = max(self.written.get(pk, NEVER), m)

    def emitted(self, em: Emission, owned: AbstractSet[PartitionKey]) -> None:
        """The sinks have the window: release what its close allows."""
        self.inflight -= 1
        self.pending.pop(em.id, None)
        if em.marks is None:
            self.unreleased.append(em)
            return
        for done in (*self.unreleased, em):
            for pk, _ in done.partitions:
                self.tracker.release(pk, Hold(HoldKind.EMIT, done.id))
        self.unreleased = []
        for pk, m in em.marks.items():
            if pk in owned:
                self.written[pk] = max(self.written.get(pk, NEVER), m)

    def seed(self, pk: PartitionKey, written: int) -> None:
        self.written[pk] = max(self.written.get(pk, NEVER), written)

    def forget(self, pk: PartitionKey) -> None:
        self.written.pop(pk, None)

    def mark(self, pk: PartitionKey) -> Mark | None:
        """The mark to save with a commit of `pk` now."""
        written, nxt = self.written.get(pk), self.tracker.next(pk)
        return Mark(written, nxt) if written is not None and nxt is not None else None

    def after(self, window: Window, owned: Iterable[PartitionKey]) -> tuple[dict[PartitionKey, int], dict[PartitionKey, Mark]]:
        """The positions (and marks) every owned partition can commit once `window` is written.
        Flushes go in order, so every window before this one is written by then."""
        em = next((e for e in self.pending.values() if e.window is window), None)
        if em is None or em.marks is None:
            return {}, {}  # a running result, or a window whose close is not all written with it
        released = {Hold(HoldKind.EMIT, e.id) for e in (*self.unreleased, em)}
        positions, marks = {}, {}
        for pk in owned:
            pos, nxt = self.tracker.safe(pk, released), self.tracker.next(pk)
            if pos is None or nxt is None:
                continue
            positions[pk] = pos
            written = max(self.written.get(pk, NEVER), em.marks.get(pk, NEVER))
            if written != NEVER:
                marks[pk] = Mark(written, nxt)
        return positions, marks

    def holding(self, pk: PartitionKey) -> list[tuple[Window, list[dict[str, Any]], int]]:
        """The closed windows not yet released that hold `pk`, with the offset each holds it at."""
        return [(em.window, em.rows, off) for em in (*self.unreleased, *self.pending.values())
                for p, off in em.partitions if p == pk]


