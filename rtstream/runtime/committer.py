"""Commits what the commit rule says is safe, through each source's own `commit` (rtstream.engine.commit_rule)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any

from rtstream.engine.commit_rule import CommitTracker, DeliveryLedger
from rtstream.model.errors import StateDirError
from rtstream.model.positions import SourceCommit, WindowCommit

log = logging.getLogger("rtstream.commit")

if TYPE_CHECKING:
    from rtstream.model.window import Window
    from rtstream.runtime.written_marks import WrittenMarks
    from rtstream.sources.base import Source


class Committer:
    """Commits what the ledger says is safe, through each source's own `commit`."""

    def __init__(self, tracker: CommitTracker, ledger: DeliveryLedger, sources: list[Source], *,
                 transactional: bool, owned: Any, timeout: float = 10.0, journal: WrittenMarks | None = None):
        self.tracker = tracker
        self.ledger = ledger
        self.sources = {s.name: s for s in sources}
        self.transactional = transactional  # a sink commits offsets in its transactions; nothing else does
        self._owned = owned  # () -> the partitions owned now
        self.timeout = timeout  # a commit the source cannot make (its broker is gone) is given up after this
        self.journal = journal  # the round's marks, saved before its commits (rtstream.runtime.written_marks)

    def safe(self, source: str, only: AbstractSet[Hashable] | None = None) -> SourceCommit:
        positions = {p: pos for p, pos in self.tracker.safe_positions(source).items() if only is None or p in only}
        marks = {p: m for p in positions if (m := self.ledger.mark((source, p))) is not None}
        return SourceCommit(positions, marks)

    async def commit_all(self) -> None:
        if self.transactional:
            return
        commits = {name: self.safe(name) for name in self.sources}
        if self.journal is not None:  # a kill between two sources' commits keeps the later ones' marks
            await self.journal.before_commits(commits)
        for name, commit in commits.items():
            src = self.sources[name]
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

    async def for_window(self, window: Window) -> WindowCommit:
        """What a transactional sink commits with `window` (empty for a running result)."""
        positions, marks = self.ledger.after(window, self._owned())
        commit = WindowCommit(window, {})
        for name, src in self.sources.items():
            part = SourceCommit({pk[1]: v for pk, v in positions.items() if pk[0] == name},
                                {pk[1]: m for pk, m in marks.items() if pk[0] == name})
            commit.by_source[name] = part
            found = await src.transaction_offsets(part)
            if found is not None:
                group, offsets = found
                commit.group_offsets[group] = offsets
        return commit

    async def confirmed(self, commit: WindowCommit) -> None:
        """A sink's transaction committed `commit`: the sources keep their copy of its marks."""
        for name, part in commit.by_source.items():
            if part.positions:
                await self.sources[name].committed_in_transaction(part)
