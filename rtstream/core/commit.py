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

import asyncio
import logging
from collections.abc import Hashable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple

from rtstream.errors import StateDirError
from rtstream.windows.watermark import NEVER

if TYPE_CHECKING:
    from rtstream.core.closing import Emission
    from rtstream.core.record import Window
    from rtstream.sources.base import Source

log = logging.getLogger("rtstream.commit")

PartitionKey = tuple[str, Hashable]  # (source name, partition)


class Mark(NamedTuple):
    """Saved beside a committed position. On replay from the position, a record below `next_offset`
    whose window ends by `written_upto` was already counted: it is skipped, not emitted again."""

    written_upto: int  # every window ending at or before this time (epoch ms) is written
    next_offset: int  # offsets below this one had been processed


class HoldKind(Enum):
    OPEN = "open"  # a tumbling or hopping window still open; id = its start
    SESSION = "session"  # a session still open; id = the session's id
    EMIT = "emit"  # a closed window on its way to the sinks; id = the emission's id


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


@dataclass(frozen=True)
class SourceCommit:
    """What to commit for one source: a position per partition, each with its mark."""

    positions: dict[Hashable, int]
    marks: dict[Hashable, Mark]


@dataclass
class WindowCommit:
    """What writing `window` makes safe to commit, for a sink that commits it in the same
    transaction as the window's rows: per consumer group, the offsets (with their marks as metadata)."""

    window: Window
    by_source: dict[str, SourceCommit]
    group_offsets: dict[str, dict[Any, Any]] = field(default_factory=dict)  # group -> {partition: OffsetAndMetadata}


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


class Committer:
    """Commits what the ledger says is safe, through each source's own `commit`."""

    def __init__(self, tracker: CommitTracker, ledger: DeliveryLedger, sources: list[Source], *,
                 transactional: bool, owned: Any, timeout: float = 10.0):
        self.tracker = tracker
        self.ledger = ledger
        self.sources = {s.name: s for s in sources}
        self.transactional = transactional  # a sink commits offsets in its transactions; nothing else does
        self._owned = owned  # () -> the partitions owned now
        self.timeout = timeout  # a commit the source cannot make (its broker is gone) is given up after this

    def safe(self, source: str, only: AbstractSet[Hashable] | None = None) -> SourceCommit:
        positions = {p: pos for p, pos in self.tracker.safe_positions(source).items() if only is None or p in only}
        marks = {p: m for p in positions if (m := self.ledger.mark((source, p))) is not None}
        return SourceCommit(positions, marks)

    async def commit_all(self) -> None:
        if self.transactional:
            return
        for name, src in self.sources.items():
            commit = self.safe(name)
            if commit.positions:
                try:
                    await asyncio.wait_for(src.commit(commit.positions, commit.marks), self.timeout)
                except StateDirError:
                    raise  # a full or read-only state_dir stops the daemon, naming the file
                except TimeoutError:
                    log.warning("commit of %s did not complete within %.0fs; the next commit tries again", name,
                                self.timeout, extra={"component": name})
                except Exception as exc:  # noqa: BLE001 - the next commit tries again
                    log.warning("commit of %s failed: %s", name, exc, extra={"component": name})

    async def commit_revoked(self, source: str, partitions: list[Hashable]) -> None:
        """Before a partition goes to another owner: commit what is safe of it."""
        commit = self.safe(source, set(partitions))
        if commit.positions and not self.transactional:
            try:
                await asyncio.wait_for(self.sources[source].commit(commit.positions, commit.marks), self.timeout)
            except Exception as exc:  # noqa: BLE001 - the next owner replays a little more (a timeout too)
                log.warning("commit on revoke of %s failed: %s", source, exc, extra={"component": source})

    def for_window(self, window: Window) -> WindowCommit:
        """What a transactional sink commits with `window` (empty for a running result)."""
        positions, marks = self.ledger.after(window, self._owned())
        commit = WindowCommit(window, {})
        for name, src in self.sources.items():
            part = SourceCommit({pk[1]: v for pk, v in positions.items() if pk[0] == name},
                                {pk[1]: m for pk, m in marks.items() if pk[0] == name})
            commit.by_source[name] = part
            found = src.transaction_offsets(part)
            if found is not None:
                group, offsets = found
                commit.group_offsets[group] = offsets
        return commit

    async def confirmed(self, commit: WindowCommit) -> None:
        """A sink's transaction committed `commit`: the sources keep their copy of its marks."""
        for name, part in commit.by_source.items():
            if part.positions:
                await self.sources[name].committed_in_transaction(part)
