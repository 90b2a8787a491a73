"""Checkpoints: each partition's open windows saved with the position they cover, in SQLite (WAL).

A restart restores the snapshot and reads on from its position, instead of replaying everything
since the last commit (which, for a one-day window, is a day of input). Commits still follow the
low-watermark rule, so a process without the snapshot (another host after a rebalance, a lost
state_dir) replays from the commit and rebuilds the same windows: a checkpoint only ever saves
work, it is never the one copy of anything.

The state is pickled: it holds accumulators of any type (sets, user-defined aggregators), and the
file is written and read only by rtstream under its own state_dir, as Bytewax does with its
recovery store.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Hashable
from pathlib import Path

from rtstream.model.errors import StateDirError

_SCHEMA = """
create table if not exists checkpoints (
    pipeline text not null, source text not null, partition text not null,
    position integer not null, taken_at real not null, state blob not null,
    primary key (pipeline, source, partition))
"""


def partition_id(partition: Hashable) -> str:
    """A partition as stored: Kafka's TopicPartition as topic:partition, others as themselves."""
    topic = getattr(partition, "topic", None)
    return f"{topic}:{partition.partition}" if topic is not None else str(partition)  # type: ignore[attr-defined]


class CheckpointStore:
    def __init__(self, path: Path, pipeline: str):
        self.path = path
        self.pipeline = pipeline
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # saves run in worker threads; one at a time
        self.saved = 0
        self.last_at: float | None = None
        self.last_bytes = 0

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("pragma journal_mode=wal")
            db.execute("pragma synchronous=full")  # a checkpoint that says it is saved survives a power cut
            db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise StateDirError(f"cannot open the checkpoint store {self.path}: {exc}") from exc
        self._db = db

    def save(self, source_rows: list[tuple[str, Hashable, int, bytes]]) -> None:
        """(source, partition, position, state) for every partition, in one transaction: a crash
        leaves the previous checkpoint or this one, never a mix."""
        assert self._db is not None
        now = time.time()
        with self._lock:
            try:
                self._db.execute("begin immediate")
                self._db.executemany(
                    "insert or replace into checkpoints values (?, ?, ?, ?, ?, ?)",
                    [(self.pipeline, src, partition_id(p), pos, now, state) for src, p, pos, state in source_rows])
                self._db.execute("commit")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("rollback")
                raise StateDirError(f"cannot save a checkpoint in {self.path}: {exc}") from exc
        self.saved += 1
        self.last_at = now
        self.last_bytes = sum(len(r[3]) for r in source_rows)

    def load(self, source: str, partitions: list[Hashable]) -> dict[Hashable, tuple[int, bytes]]:
        """The saved (position, state) of each of `partitions` that has one."""
        assert self._db is not None
        by_id = {partition_id(p): p for p in partitions}
        with self._lock:
            found = self._db.execute("select partition, position, state from checkpoints where pipeline = ? "
                                     "and source = ?", (self.pipeline, source)).fetchall()
        return {by_id[pid]: (pos, state) for pid, pos, state in found if pid in by_id}

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
