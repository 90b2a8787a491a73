"""Open window state, kept per partition so a revoked partition's share can be dropped alone."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any


class Pane:
    """One partition's share of one window: an aggregate table or the buffered records."""

    __slots__ = ("min_offset", "table", "records", "count")

    def __init__(self, min_offset: int, table: dict[Any, list[Any]] | None):
        self.min_offset = min_offset
        self.table = table
        self.records: list[tuple[int, dict[str, Any]]] | None = None if table is not None else []
        self.count = 0  # records folded in


class WindowStore:
    def __init__(self) -> None:
        self._panes: dict[Hashable, dict[int, Pane]] = {}
        self.buffered: dict[int, int] = {}  # window start -> records buffered over all partitions

    def panes_of(self, partition: Hashable) -> dict[int, Pane]:
        panes = self._panes.get(partition)
        if panes is None:
            panes = self._panes[partition] = {}
        return panes

    def drop(self, partition: Hashable) -> list[int]:
        """Forget a partition's open panes; returns the window starts it held."""
        panes = self._panes.pop(partition, {})
        for start, pane in panes.items():
            if pane.records is not None:
                self.buffered[start] = self.buffered.get(start, 0) - len(pane.records)
        return list(panes)

    def take(self, limit: Callable[[Hashable], int] | None, size_ms: int) -> dict[int, list[tuple[Hashable, Pane]]]:
        """Remove and return the panes of windows ending at or before `limit(partition)` (None: all),
        grouped by window start, oldest first."""
        out: dict[int, list[tuple[Hashable, Pane]]] = {}
        for partition, panes in self._panes.items():
            upto = limit(partition) if limit is not None else None
            done = [s for s in panes if upto is None or s + size_ms <= upto]
            for start in done:
                pane = panes.pop(start)
                out.setdefault(start, []).append((partition, pane))
                if pane.records is not None:
                    left = self.buffered.get(start, 0) - len(pane.records)
                    if left > 0:
                        self.buffered[start] = left
                    else:
                        self.buffered.pop(start, None)
        return dict(sorted(out.items()))

    def snapshot(self) -> dict[int, list[tuple[Hashable, Pane]]]:
        """Every open pane grouped by window start, oldest first, left in place."""
        out: dict[int, list[tuple[Hashable, Pane]]] = {}
        for partition, panes in self._panes.items():
            for start, pane in panes.items():
                out.setdefault(start, []).append((partition, pane))
        return dict(sorted(out.items()))

    def open_windows(self) -> int:
        return len({s for panes in self._panes.values() for s in panes})
