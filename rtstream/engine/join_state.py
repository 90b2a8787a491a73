"""The state of joins, kept between records (see rtstream.engine.stateful for holds and checkpoints).

- `SideTagger`: a window join's rows wait in the pipeline's own windows; this marks each with its side
  and bounds how many rows one side puts in one window.
- `IntervalState`: an interval join's rows per key and side, each kept until the watermark passes the
  last time a row of the other side could match it.

A stream-table join's table is rtstream.engine.table_state's.
"""

from __future__ import annotations

import heapq
import itertools
import operator
from typing import Any

from rtstream.engine.stateful import LiveOffsets, StatefulStep, scalar_key, size_of
from rtstream.model.positions import PartitionKey
from rtstream.windows.watermark import NEVER


class Sided(dict):  # type: ignore[type-arg]
    """A row of one side of a window join, waiting in its window (a dict, so every other part sees a row)."""

    __slots__ = ("side",)

    def __init__(self, value: dict[str, Any], side: str):
        super().__init__(value)
        self.side = side


def merge(left: dict[str, Any], right: dict[str, Any] | None, key_field: str | None,
          left_prefix: str, right_prefix: str) -> dict[str, Any]:
    """One output row: the left row's fields, then the right row's; a field both have (other than a
    shared key) is written as left_prefix+name and right_prefix+name."""
    if right is None:
        return dict(left)
    out: dict[str, Any] = {}
    for k, v in left.items():
        out[(left_prefix + k) if k in right and k != key_field else k] = v
    for k, v in right.items():
        if k == key_field:
            continue
        out[(right_prefix + k) if k in left else k] = v
    return out


def merge_all(left: dict[str, Any], rights: list[dict[str, Any]], key_field: str | None, left_prefix: str,
              right_prefix: str) -> list[dict[str, Any]]:
    """`[merge(left, r, ...) for r in rights]`, the same rows with their fields in the same order, made
    faster: the renames depend only on which fields each side has, so rights of one shape (the same
    fields in the same order, as a window's rows of one source mostly are) share one plan, and a row
    is the left part copied plus the right's values taken in C."""
    out: list[dict[str, Any]] = []
    shape: tuple[str, ...] | None = None
    base: dict[str, Any] = {}
    take: Any = None
    dests: list[str] = []
    names: list[str] = []
    for right in rights:
        fields = tuple(right)
        if fields != shape:
            shape = fields
            base = {(left_prefix + k) if k in right and k != key_field else k: v for k, v in left.items()}
            names = [k for k in fields if k != key_field]
            dests = [(right_prefix + k) if k in left else k for k in names]
            take = operator.itemgetter(*names) if len(names) > 1 else None
        row = base.copy()
        if take is not None:
            row.update(zip(dests, take(right), strict=True))
        elif names:  # itemgetter of one name gives the value, not a tuple
            row[dests[0]] = right[names[0]]
        out.append(row)
    return out


class SideTagger(StatefulStep):
    """Marks each row of a window join with its side; rows beyond `max_rows` per window and side are refused."""

    def __init__(self, name: str, sides: dict[str, str], max_rows: int):
        super().__init__(name)
        self.side_of = sides  # source name -> "left" | "right"
        self.sides = tuple(sides)
        self.max_rows = max_rows
        self.counts: dict[tuple[int, str], int] = {}  # (window start, side) -> rows over all partitions
        self.by_pk: dict[PartitionKey, dict[tuple[int, str], int]] = {}

    def at(self, pk: PartitionKey, rec: Any, value: dict[str, Any]) -> list[dict[str, Any]]:
        side = self.side_of.get(pk[0])
        if side is None:
            return [value]  # a source that is no side of this join passes through
        ts = self.time_of(rec, value)
        last = ts - ts % self.hop_ms
        counts = self.counts
        if self.size_ms == self.hop_ms:  # tumbling, the common case: one window, no lists
            at = (last, side)
            n = counts.get(at, 0)
            if n >= self.max_rows:
                raise ValueError(f"the {side} side already has max_rows = {self.max_rows} rows in the window "
                                 f"starting at {last} (ms)")
            counts[at] = n + 1
            mine = self.by_pk.get(pk)
            if mine is None:
                mine = self.by_pk[pk] = {}
            mine[at] = mine.get(at, 0) + 1
            return [Sided(value, side)]
        starts = [last - k * self.hop_ms for k in range(self.size_ms // self.hop_ms)]
        for s in starts:
            if counts.get((s, side), 0) >= self.max_rows:
                raise ValueError(f"the {side} side already has max_rows = {self.max_rows} rows in the window "
                                 f"starting at {s} (ms)")
        mine = self.by_pk.setdefault(pk, {})
        for s in starts:
            counts[(s, side)] = counts.get((s, side), 0) + 1
            mine[(s, side)] = mine.get((s, side), 0) + 1
        return [Sided(value, side)]

    def evict_before(self, watermark: int) -> None:
        for table in (self.counts, *self.by_pk.values()):
            for ws in [ws for ws in table if ws[0] + self.size_ms <= watermark]:
                del table[ws]

    def lowest(self, pk: PartitionKey, floor: int) -> int | None:
        return None  # the rows wait in the windows, which hold the commits themselves

    def snapshot(self, pk: PartitionKey) -> Any:
        return dict(self.by_pk.get(pk, {}))

    def restore(self, pk: PartitionKey, state: Any) -> None:
        self.drop(pk)
        self.by_pk[pk] = dict(state)
        for ws, n in state.items():
            self.counts[ws] = self.counts.get(ws, 0) + n

    def drop(self, pk: PartitionKey) -> None:
        for ws, n in self.by_pk.pop(pk, {}).items():
            left = self.counts.get(ws, 0) - n
            if left > 0:
                self.counts[ws] = left
            else:
                self.counts.pop(ws, None)

    def figures(self) -> tuple[int, int, int]:
        return sum(self.counts.values()), len(self.counts), 0


# an interval join's kept row: (time, offset, partition, value)
Row = tuple[int, int, PartitionKey, dict[str, Any]]


class IntervalState(StatefulStep):
    """Rows of `left` and `right` by key; a pair is emitted once, when its second row arrives, with
    the pipeline's time field set to the later row's time (so it lands in that row's window)."""

    def __init__(self, name: str, left: str, right: str, left_on: str, right_on: str, lower_ms: int,
                 upper_ms: int, left_prefix: str, right_prefix: str, max_rows: int):
        super().__init__(name)
        self.left, self.right = left, right
        self.sides = (left, right)
        self.left_on, self.right_on = left_on, right_on
        self.lower, self.upper = lower_ms, upper_ms
        self.prefixes = (left_prefix, right_prefix)
        self.max_rows = max_rows
        self.rows: dict[Any, tuple[list[Row], list[Row]]] = {}
        self._expiry: list[tuple[int, int, Any]] = []  # (time after which no match can come, seq, key)
        self._seq = itertools.count()
        self.live: dict[PartitionKey, LiveOffsets] = {}
        self.count = 0
        self.bytes = 0

    def at(self, pk: PartitionKey, rec: Any, value: dict[str, Any]) -> list[dict[str, Any]]:
        src = pk[0]
        if src == self.left:
            key, mine, other = scalar_key(value, self.left_on), 0, 1
        elif src == self.right:
            key, mine, other = scalar_key(value, self.right_on), 1, 0
        else:
            return [value]
        ts = self.time_of(rec, value)
        sides = self.rows.get(key)
        if sides is None:
            sides = self.rows[key] = ([], [])
        if len(sides[mine]) >= self.max_rows:
            raise ValueError(f"key {key!r} already keeps max_rows = {self.max_rows} rows of {src!r}")
        out = []
        same = self.left_on if self.left_on == self.right_on else None
        for ots, _, _, ov in sides[other]:
            if mine == 0:
                lt, rt, lv, rv = ts, ots, value, ov
            else:
                lt, rt, lv, rv = ots, ts, ov, value
            if lt + self.lower <= rt <= lt + self.upper:
                row = merge(lv, rv, same, *self.prefixes)
                row[self.time_field] = (lv if lt >= rt else rv).get(self.time_field, max(lt, rt))
                out.append(row)
        sides[mine].append((ts, rec.offset, pk, value))
        live = self.live.get(pk)
        if live is None:
            live = self.live[pk] = LiveOffsets()
        live.add(rec.offset)
        self.count += 1
        self.bytes += size_of(value)
        until = ts + self.upper if mine == 0 else ts - self.lower
        heapq.heappush(self._expiry, (until, next(self._seq), key))
        self.kept(pk, rec.offset)
        return out

    def _useful(self, side: int, ts: int, watermark: int) -> bool:
        return (ts + self.upper if side == 0 else ts - self.lower) >= watermark

    def evict_before(self, watermark: int) -> None:
        if watermark == NEVER:
            return
        exp = self._expiry
        while exp and exp[0][0] < watermark:
            _, _, key = heapq.heappop(exp)
            sides = self.rows.get(key)
            if sides is None:
                continue
            for side in (0, 1):
                keep = []
                for row in sides[side]:
                    if self._useful(side, row[0], watermark):
                        keep.append(row)
                    else:
                        self.count -= 1
                        self.bytes -= size_of(row[3])
                        self.live[row[2]].remove(row[1])
                        self.let_go(row[2])
                sides[side][:] = keep
            if not sides[0] and not sides[1]:
                del self.rows[key]

    def lowest(self, pk: PartitionKey, floor: int) -> int | None:
        live = self.live.get(pk)
        return live.lowest(floor) if live is not None else None

    def snapshot(self, pk: PartitionKey) -> Any:
        return [(key, side, r[0], r[1], r[3]) for key, sides in self.rows.items()
                for side in (0, 1) for r in sides[side] if r[2] == pk]

    def restore(self, pk: PartitionKey, state: Any) -> None:
        self.drop(pk)
        live = self.live[pk] = LiveOffsets()
        for key, side, ts, offset, value in sorted(state, key=lambda r: r[3]):
            live.add(offset)
            sides = self.rows.setdefault(key, ([], []))
            sides[side].append((ts, offset, pk, value))
            sides[side].sort(key=lambda r: r[0])
            self.count += 1
            self.bytes += size_of(value)
            until = ts + self.upper if side == 0 else ts - self.lower
            heapq.heappush(self._expiry, (until, next(self._seq), key))

    def drop(self, pk: PartitionKey) -> None:
        self.live.pop(pk, None)
        for key in list(self.rows):
            sides = self.rows[key]
            for side in (0, 1):
                gone = [r for r in sides[side] if r[2] == pk]
                if gone:
                    sides[side][:] = [r for r in sides[side] if r[2] != pk]
                    self.count -= len(gone)
                    self.bytes -= sum(size_of(r[3]) for r in gone)
            if not sides[0] and not sides[1]:
                del self.rows[key]

    def figures(self) -> tuple[int, int, int]:
        return self.count, len(self.rows), self.bytes
