"""The marks of one commit round, saved once for every source before any of them commits.

A window that folds several sources (or partitions whose commits are separate requests) is written
once, whole; then each source commits its own position with its own mark (rtstream.model.positions.Mark).
A kill between two of those commits left the second source at an older position without the mark
that says the window is written, and its replay wrote the window again from its records alone: a
wrong row an upserting sink stores over the right one (tests/e2e/test_multisource_kill.py failed
10 runs of 10). So before a round commits two sources or more, this process journals, in one atomic
file under state_dir, the mark of exactly each (source, partition) it is about to commit; on start,
a partition that resumes below a journaled mark's `next_offset` adopts it (PartitionLifecycle).

Why a journal of this process's own marks, and not the highest mark of the other sources (the
first fix, for joins only): a mark is true only of the partition it was computed for. With Kafka
consumer groups another process may have held a partition, ahead of or behind this one, and taking
a higher mark for a partition this process never read that far skips records no window holds. A
journaled mark says what this process did with that very partition, so it holds whoever commits
next; and it is keyed by the source's checkpoint scope (a Kafka source's group), so a new group or
a renamed source starts over. One file per pipeline, host and worker: replicas sharing a state
volume never overwrite each other's.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import socket
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

from rtstream.model.positions import Mark, SourceCommit
from rtstream.sources.file_positions import PositionFile

log = logging.getLogger("rtstream.commit")


def _key(source: str, partition: Hashable) -> str:
    return f"{source}\t{partition!r}"  # a Kafka TopicPartition's repr names its topic and number


class WrittenMarks:
    def __init__(self, state_dir: Path, pipeline: str, scopes: Mapping[str, str], worker: int = 0):
        # the pipeline's name is the user's: made safe for a file name, told apart by a hash of it
        name = f"{re.sub(r'[^A-Za-z0-9_-]', '_', pipeline)[:40]}-{hashlib.sha256(pipeline.encode()).hexdigest()[:8]}"
        self.file = PositionFile(state_dir, f"written-marks.{name}.{socket.gethostname()}.w{worker}")
        self.scopes = dict(scopes)  # source -> what its positions are valid for
        self._saved: dict[str, list[Any]] = self._load()
        self._lock = asyncio.Lock()  # two saves at once could rename the older document last

    def _load(self) -> dict[str, list[Any]]:
        # The journal only ever spares a window from being written again: one that cannot be read is
        # set aside with a warning (the start goes on as it did before journals), never a traceback.
        try:
            doc = self.file.load()
        except (OSError, ValueError) as exc:  # orjson's JSONDecodeError is a ValueError
            log.warning("%s cannot be read (%s): started without it; a source behind may write a window again",
                        self.file.path, exc)
            return {}
        pairs = doc.get("pairs") if isinstance(doc, dict) else None
        return {k: v for k, v in pairs.items() if isinstance(v, list) and len(v) == 3} if isinstance(pairs, dict) else {}

    def mark(self, source: str, partition: Hashable) -> Mark | None:
        """The mark this process journaled for the partition, if it was read in the same scope."""
        entry = self._saved.get(_key(source, partition))
        if entry is None or entry[0] != self.scopes.get(source):
            return None
        written, nxt = entry[1], entry[2]
        if not (isinstance(written, int) and isinstance(nxt, int)):
            return None
        return Mark(written, nxt)

    async def before_commits(self, commits: Mapping[str, SourceCommit]) -> None:
        """On disk before any of `commits` is made (a StateDirError stops the round). One source alone
        needs none: its commit carries its marks."""
        if sum(1 for c in commits.values() if c.positions and c.marks) < 2:
            return
        async with self._lock:
            fresh = {_key(name, p): [self.scopes.get(name), *m] for name, c in commits.items()
                     for p, m in c.marks.items() if p in c.positions}
            if all(self._saved.get(k) == v for k, v in fresh.items()):
                return  # nothing new since the last round: no write
            self._saved.update(fresh)
            await asyncio.to_thread(self.file.save, {"pairs": dict(self._saved)})
