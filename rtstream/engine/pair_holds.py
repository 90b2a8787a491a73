"""What an interval join's evicted rows still owe (rtstream.engine.join_state.IntervalState).

A pair lands in the window of its later row, and only that row's partition holds the window (its
share, rtstream.engine.commit_rule). The earlier row's partition held its commit only while the row
was kept for matching: evicted before the pair's window was written, its commit could pass the row,
and a restart then replayed the later row with no partner, and the sink replaced the window whole
with fewer rows (found by the graphgaps work: 26 of 1520 pairs lost). So a row that made a pair as
the earlier row owes it: once evicted it stops matching, but it stays kept (holding its offset, and
in its partition's checkpoints, so a restart from either brings it back) until every partition the
pair touched says windows ending by the pair's last window are written. A row that made no pair
owes nothing and goes as before. A table join's entry is held the same way for the stream rows it
enriched, once replaced, deleted or expired (rtstream.engine.table_state).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

from rtstream.model.positions import PartitionKey

Ident = tuple[PartitionKey, int]  # a kept row: (its partition, its offset)
Written = Callable[[PartitionKey], "int | None"]  # windows ending by this time are written (None: not owned)


def last_window_end(ts: int, size_ms: int, hop_ms: int) -> int:
    """The end of the last tumbling or hopping window that holds time `ts`."""
    return ts - ts % hop_ms + size_ms


class PairDebts:
    """Per row that made pairs as the earlier row: the last window end of its pairs and the
    partitions of their later rows; and the evicted rows kept until those windows are written."""

    def __init__(self) -> None:
        self.owed: dict[Ident, tuple[int, set[PartitionKey]]] = {}
        self.retired: dict[Ident, tuple[Any, int, Any]] = {}  # evicted, still owing: (key, side, row)
        self._due: list[tuple[int, int, Ident]] = []  # (window end to be written, seq, row)
        self._seq = itertools.count()

    def paired(self, earlier: Ident, later: PartitionKey, window_end: int) -> None:
        """The row `earlier` met a row of `later`; their pair lands in a window ending by `window_end`."""
        debt = self.owed.get(earlier)
        if debt is None:
            self.owed[earlier] = (window_end, {later})
        else:
            debt[1].add(later)
            if window_end > debt[0]:
                self.owed[earlier] = (window_end, debt[1])

    def evicted(self, key: Any, side: int, row: Any) -> bool:
        """The watermark let `row` go: True when it owes pairs and is retired here instead."""
        ident = (row[2], row[1])
        debt = self.owed.get(ident)  # stays beside the retired row: `settled` reads its partitions
        if debt is None:
            return False
        self.retired[ident] = (key, side, row)
        heapq.heappush(self._due, (debt[0], next(self._seq), ident))
        return True

    def settled(self, written: Written) -> list[Any]:
        """The retired rows whose pairs' windows are all written now: no longer kept."""
        out = []
        due = self._due
        while due:
            upto, _, ident = due[0]
            entry = self.retired.get(ident)
            debt = self.owed.get(ident)
            if entry is None or debt is None:
                heapq.heappop(due)  # dropped with its partition
                continue
            own = written(ident[0])
            if own is None or own < upto:
                break  # this partition's windows by then are not written yet (nor any later one's)
            if any((w := written(p)) is not None and w < upto for p in debt[1]):
                break  # a partition not owned any more (None) has no window of ours left to write
            heapq.heappop(due)
            del self.retired[ident], self.owed[ident]
            out.append(entry[2])
        return out

    def retired_of(self, pk: PartitionKey) -> list[tuple[Any, int, Any]]:
        return [entry for ident, entry in self.retired.items() if ident[0] == pk]

    def drop(self, pk: PartitionKey) -> list[Any]:
        """The partition is revoked or restored: its debts go; returns its retired rows."""
        for ident in [i for i in self.owed if i[0] == pk]:
            del self.owed[ident]
        gone = [i for i in self.retired if i[0] == pk]
        return [self.retired.pop(i)[2] for i in gone]


__all__ = ["PairDebts", "last_window_end"]
