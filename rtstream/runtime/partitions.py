"""Partition ownership, in one place: assigned -> started at a decided offset -> revoked.

A source whose partitions come and go (Kafka) decides where each assigned partition starts before it
accepts any record of it, and hands that decision over as an `Assignment`; the lifecycle seeds the
engine with the commit's marks, brings back a checkpoint that covers more than the commit, and says
where to read from. On revoke it commits what is safe, checkpoints, and drops the partition's open
state (its next owner replays it). Fixed-partition sources (files, spools) start the same way once.

The marks journaled before a commit round (rtstream.runtime.written_marks) are adopted once every
source has had its first start or assignment, all together: whether a partition's mark drops its
share of a window depends on whether another source's restored checkpoint holds that window open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from rtstream.model.errors import StateDirError
from rtstream.model.positions import Assignment, PartitionKey

if TYPE_CHECKING:
    from rtstream.engine.window_engine import WindowEngine
    from rtstream.runtime.checkpoint_store import CheckpointStore
    from rtstream.runtime.committer import Committer
    from rtstream.sources.base import Source

log = logging.getLogger("rtstream.partitions")
STARTED_LOG_S = 10.0  # how often a start waiting for a source's first partitions says so


class PartitionState(Enum):
    STARTED = "started"  # reading from its decided start
    REVOKED = "revoked"  # given up; its open state dropped


class PartitionLifecycle:
    def __init__(self, engine: WindowEngine, committer: Committer, checkpoints: CheckpointStore | None,
                 scopes: dict[str, str]):
        self.engine = engine
        self.committer = committer
        self.checkpoints = checkpoints
        self.scopes = scopes  # source -> what its checkpoints are valid for
        self.states: dict[PartitionKey, tuple[PartitionState, int | None]] = {}  # with the start offset
        # the sources still to have their first start or assignment, and where the partitions of those
        # that had theirs read on from: their journaled marks wait for the last one (see _started)
        self._first_pending: set[str] = set(scopes)
        self._deferred: dict[PartitionKey, int] = {}
        self._all_started = asyncio.Event()

    def start_fixed(self, src: Source) -> None:
        """A source with a fixed set of partitions, once at start-up (one whose partitions come and
        go starts with its first `assigned`)."""
        fixed = src.partitions()
        now = asyncio.get_running_loop().time()
        for p in fixed or []:
            self.engine.assign((src.name, p), now)
            self.states[(src.name, p)] = (PartitionState.STARTED, None)
        for p, mark in src.resume_marks().items():
            self.engine.seed((src.name, p), mark)
        if fixed is None:
            return
        restored = self._restore(src.name, self._load(src.name, fixed), src.resume_at) if fixed else {}
        self._started(src.name, {**src.resumed(), **restored} if fixed else {})

    async def assigned(self, a: Assignment) -> dict[Hashable, int]:
        now = asyncio.get_running_loop().time()
        for p in a.starts:
            self.engine.assign((a.source, p), now, a.epoch)
            if p in a.marks:
                self.engine.seed((a.source, p), a.marks[p])
        if a.starts:
            log.info("%s: assigned %s", a.source, sorted(map(str, a.starts)), extra={"component": a.source})
        starts = dict(a.starts)
        if a.resumable:
            found = self._load(a.source, list(a.resumable))

            def newer(positions: dict[Hashable, int]) -> set[Hashable]:
                return {p for p, pos in positions.items() if pos >= a.starts[p]}  # older than the commit: replay
            starts.update(self._restore(a.source, found, newer))
        for p, pos in starts.items():
            self.states[(a.source, p)] = (PartitionState.STARTED, pos)
        self._started(a.source, starts)  # no await since the restore: no other assignment in between
        return starts

    async def every_source_started(self) -> None:
        """Until every source has had its first start or assignment, and the journaled marks are
        adopted: nothing may be folded before (a window of a partition that adopts later could close
        without it). A Kafka source's first assignment waits for its group."""
        waited = 0.0
        while not self._all_started.is_set():
            try:
                await asyncio.wait_for(self._all_started.wait(), STARTED_LOG_S)
            except TimeoutError:
                waited += STARTED_LOG_S
                log.info("reading waits for the first partitions of %s (%.0fs so far): a mark saved before a "
                         "commit round is taken once every source's checkpoints are back",
                         ", ".join(sorted(self._first_pending)), waited)

    def _started(self, source: str, starts: dict[Hashable, int]) -> None:
        """The source's partitions read on from `starts`. Their journaled marks are adopted with every
        other source's, once the last has had its first start or assignment; after that, at once.
        Adopted as each source's assignment arrived, the first saw none of the later ones' restored
        windows, dropped its share of a window the next brought back open, and that window was written
        again without it (tests/e2e/test_journal_adopt_order.py, files;
        tests/integration/test_kafka_journal_adopt_order.py, Kafka sources, each its own consumer)."""
        self._deferred.update({(source, p): start for p, start in starts.items()})
        self._first_pending.discard(source)
        if self._first_pending:
            return
        deferred, self._deferred = self._deferred, {}
        self._adopt_journaled(deferred)
        self._all_started.set()

    async def revoked(self, source: str, partitions: list[Hashable]) -> None:
        for p in partitions:  # revoked before every source had started: no mark to take
            self._deferred.pop((source, p), None)
        await self.committer.commit_revoked(source, partitions)
        try:
            await save_checkpoints(self.engine, self.checkpoints, self.scopes,
                             [(source, p) for p in partitions])  # the next owner may share the store
        except StateDirError as exc:
            log.warning("checkpoint on revoke of %s failed: %s", source, exc, extra={"component": source})
        for p in partitions:
            self.engine.revoke((source, p))
            self.states[(source, p)] = (PartitionState.REVOKED, None)
        log.info("%s: revoked %s", source, sorted(map(str, partitions)), extra={"component": source})

    def _adopt_journaled(self, starts: dict[PartitionKey, int]) -> None:
        """A partition that reads on from below the mark this process saved for it before a commit
        round (rtstream.runtime.written_marks) takes that mark: its own commit may not have landed.
        Only below that mark's next offset: the records after it were never counted here."""
        journal = self.committer.journal
        if journal is None:
            return
        marks = {}
        for (source, p), start in starts.items():
            mark = journal.mark(source, p)
            if mark is not None and start < mark.next_offset:
                marks[(source, p)] = mark
        if not marks:
            return
        for source, p in sorted(self.engine.adopt_marks(marks), key=repr):
            log.info("%s: %s reads on from %s below the mark saved before its commit: windows ending by %s "
                     "were written and are not written again", source, p, starts[(source, p)],
                     marks[(source, p)].written_upto, extra={"component": source})

    def _load(self, source: str, partitions: list[Hashable]) -> dict[Hashable, tuple[int, bytes]]:
        if self.checkpoints is None:
            return {}
        return self.checkpoints.load(self.scopes[source], partitions)

    def _restore(self, source: str, found: dict[Hashable, tuple[int, bytes]], accept: Accept) -> dict[Hashable, int]:
        """Bring back the checkpointed state of the partitions whose source `accept`s to read on from
        the checkpoint's position; returns those positions."""
        if not found:
            return {}
        ok = accept({p: pos for p, (pos, _) in found.items()})
        for p in set(found) - ok:
            log.info("%s: checkpoint of %s not used (older than the commit, or the source cannot resume from it); "
                     "replaying from the commit", source, p, extra={"component": source})
        now = asyncio.get_running_loop().time()
        out = {}
        for p in ok:
            pos, blob = found[p]
            windows = self.engine.restore((source, p), pos, blob, now)
            out[p] = pos
            log.info("%s: restored %s from its checkpoint: %d open windows, reading on from %s", source, p, windows,
                     pos, extra={"component": source})
        return out


class Accept(Protocol):
    def __call__(self, positions: dict[Hashable, int], /) -> set[Hashable]: ...


async def save_checkpoints(engine: WindowEngine, store: CheckpointStore | None, scopes: dict[str, str],
                     only: list[PartitionKey] | None = None) -> None:
    """Snapshot the open windows of `only` (default: every partition owned) with their positions."""
    if store is None or engine.time_range is not None:
        return  # a backfill re-reads a range; it has nothing to resume
    rows = []
    positions = []
    saved: list[tuple[PartitionKey, int | None]] = []  # each partition with its epoch when snapshotted
    for pk in only if only is not None else engine.owned():
        snap = engine.snapshot(pk)
        if snap is not None:
            rows.append((scopes[pk[0]], pk[1], snap[0], snap[1]))
            positions.append((pk[0], pk[1], snap[0]))
            saved.append((pk, engine.epoch_of(pk)))
    if rows:
        await asyncio.to_thread(store.save, rows)
        # saved: count windows let their partitions' commits reach these positions (rtstream.engine.count_fold)
        engine.checkpointed({(src, p): pos for src, p, pos in positions})
        for (pk, epoch), (_, _, position, _) in zip(saved, rows, strict=True):
            engine.checkpoint_saved(pk, position, epoch)  # join and keyed state stop holding commits
        log.debug("checkpoint: %d partitions, %d bytes", len(rows), store.last_bytes)
