"""Count windows: `[window] type = "count"`, `size = N`: every N records of a key make a window.

A key's records are counted per partition, in offset order (a replay meets them in the same order,
so it rebuilds the same windows; Kafka puts a key in one partition). The key is the aggregate's
`key`; without one (or without an aggregate), every N records of the partition. A window closes at
its N-th record, whatever the watermark says: there is no lateness and no late record. Its bounds
are the earliest and the latest time of its records (end exclusive: latest + 1 ms).

An unfinished count window holds its partition's commit at its first offset (the commit rule), and
it is restored from the partition's checkpoint (rtstream.engine.count_fold): a key's place in its
count cannot be rebuilt from a commit alone, so count windows need `state.checkpoint_interval`, and
the commit never passes the last checkpoint's position.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from typing import Any

_IDS = itertools.count(1)  # 0 is the hold at the last checkpoint's position


class CountWindow:
    """One key's unfinished count window in one partition: its aggregate table or its records."""

    __slots__ = ("id", "min_offset", "table", "records", "count", "min_ts", "max_ts")

    def __init__(self, min_offset: int, table: dict[Any, list[Any]] | None):
        self.id = next(_IDS)
        self.min_offset = min_offset
        self.table = table
        self.records: list[tuple[int, dict[str, Any]]] | None = None if table is not None else []
        self.count = 0
        self.min_ts: int | None = None
        self.max_ts: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        self.id = next(_IDS)  # restored: a fresh hold id, never one another window of this process holds


class CountStore:
    """The unfinished count windows, per partition and key (so a revoked partition's are dropped alone)."""

    def __init__(self, size: int):
        self.size = size
        self._open: dict[Hashable, dict[Any, CountWindow]] = {}

    def of(self, partition: Hashable) -> dict[Any, CountWindow]:
        windows = self._open.get(partition)
        if windows is None:
            windows = self._open[partition] = {}
        return windows

    def drop(self, partition: Hashable) -> list[CountWindow]:
        return list(self._open.pop(partition, {}).values())

    def take_all(self) -> list[tuple[Hashable, Any, CountWindow]]:
        """Every unfinished window (the end of a finite run), oldest first."""
        out = [(pk, key, w) for pk, windows in self._open.items() for key, w in windows.items()]
        self._open.clear()
        return sorted(out, key=lambda t: (t[2].min_offset, str(t[0])))

    def open_count(self) -> int:
        return sum(len(w) for w in self._open.values())


def count_size(data: Any) -> Any:
    """`[window]` as written, with a count window's `size = N` read as its number of records."""
    if not isinstance(data, dict) or data.get("type") != "count" or "size" not in data:
        return data
    size = data["size"]
    if size.__class__ is not int:  # not bool, not float, not "5s"
        raise ValueError(f"a count window's size is a number of records, e.g. size = 100 (got {str(size)[:40]!r})")
    out = dict(data)
    out["records"] = out.pop("size")
    return out


def check_count_window(w: Any) -> Any:
    """The keys a count window refuses, each with why."""
    if w.records is None:
        raise ValueError('a count window needs its number of records, e.g. size = 100')
    for key in ("hop", "gap", "schedule"):
        if getattr(w, key) is not None:
            raise ValueError(f"{key} is not for count windows: a count window closes at its size-th record")
    if w.emit_empty:
        raise ValueError("emit_empty needs a schedule of windows; count windows have none")
    if w.emit == "updates":
        raise ValueError('emit = "updates" is for tumbling and hopping windows')
    w.size = 0.001  # what time-sized code reads (a backfill's edges); count windows are not sized by time
    return w
