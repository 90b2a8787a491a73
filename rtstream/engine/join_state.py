"""An interval join's state, kept between records (see rtstream.engine.stateful for holds and
checkpoints): its rows per key and side, each kept until the watermark passes the last time a row of
the other side could match it.

A window join's rows wait in the pipeline's own windows, marked by rtstream.engine.join_sides; a
stream-table join's table is rtstream.engine.table_state's.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any

from rtstream.engine.join_keys import NO_MATCH, LoneKey, join_key
from rtstream.engine.join_rows import RowShape
from rtstream.engine.join_sides import Sided  # noqa: F401 - window checkpoints pickled before join_sides name it here
from rtstream.engine.outer_rows import let_left_go, take_lone_rows
from rtstream.engine.pair_holds import PairDebts, last_window_end
from rtstream.engine.stateful import LiveOffsets, StatefulStep, size_of
from rtstream.model.positions import PartitionKey
from rtstream.model.record import Record
from rtstream.windows.watermark import NEVER

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
        self.shape = RowShape(left_on, right_on, left_prefix, right_prefix)  # rtstream.engine.join_rows
        self.rows: dict[Any, tuple[list[Row], list[Row]]] = {}
        self._expiry: list[tuple[int, int, Any]] = []  # (time after which no match can come, seq, key)
        self._seq = itertools.count()
        self.live: dict[PartitionKey, LiveOffsets] = {}
        self.count = 0
        self.bytes = 0
        # how = "left" (rtstream.engine.outer_rows): the left rows that found a partner, and those the
        # watermark let go without one, waiting to be folded into their windows
        self.matched: set[tuple[PartitionKey, int]] | None = None
        self.released: list[tuple[PartitionKey, int, dict[str, Any]]] = []
        self.debts = PairDebts()  # evicted rows kept until their pairs' windows are written (pair_holds)

    def at(self, pk: PartitionKey, rec: Any, value: dict[str, Any]) -> list[dict[str, Any]]:
        src = pk[0]
        if src == self.left:
            key, mine, other = join_key(value, self.left_on), 0, 1
        elif src == self.right:
            key, mine, other = join_key(value, self.right_on), 1, 0
        else:
            return [value]
        if key is NO_MATCH:
            if mine == 1 or self.matched is None:
                return []  # a null key never matches: nothing to keep (rtstream.engine.join_keys)
            key = LoneKey(pk[0], pk[1], rec.offset)  # how = "left": kept alone, let go unmatched like any other
        shape = self.shape
        shape.see(mine, value)
        ts = self.time_of(rec, value)
        sides = self.rows.get(key)
        if sides is None:
            sides = self.rows[key] = ([], [])
        if len(sides[mine]) >= self.max_rows:
            raise ValueError(f"key {key!r} already keeps max_rows = {self.max_rows} rows of {src!r}")
        out = []
        shape.set_time_field(self.time_field)
        matched = self.matched
        for ots, ooff, opk, ov in sides[other]:
            if mine == 0:
                lt, rt, lv, rv = ts, ots, value, ov
            else:
                lt, rt, lv, rv = ots, ts, ov, value
            if lt + self.lower <= rt <= lt + self.upper:
                if matched is not None:
                    matched.add((pk, rec.offset) if mine == 0 else (opk, ooff))
                self.debts.paired((opk, ooff), pk, last_window_end(max(ts, ots), self.size_ms, self.hop_ms))
                out.append(shape.row(lv, rv, (lv if lt >= rt else rv).get(self.time_field, max(lt, rt))))
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

    def kept(self, pk: PartitionKey, offset: int) -> None:
        if self.matched is None:
            return super().kept(pk, offset)
        # how = "left": whether a row found a partner is known only from this state, so a restart must
        # restore it from a checkpoint: the commit never passes the last one (before it, the first row)
        self.tracker.hold(pk, self.hold, self._saved.get(pk, offset))

    def _rehold(self, pk: PartitionKey) -> None:
        if self.matched is None:
            return super()._rehold(pk)
        if pk in self._saved:
            self.tracker.release(pk, self.hold)
            self.tracker.hold(pk, self.hold, self._saved[pk])

    def take_released(self, final: bool = False) -> list[tuple[PartitionKey, Record, dict[str, Any]]]:
        return take_lone_rows(self, final)  # how = "left" (rtstream.engine.outer_rows); folded by engine.released

    def _useful(self, side: int, ts: int, watermark: int) -> bool:
        return (ts + self.upper if side == 0 else ts - self.lower) >= watermark

    def _gone(self, row: Row) -> None:
        self.count -= 1
        self.bytes -= size_of(row[3])
        self.live[row[2]].remove(row[1])
        self.let_go(row[2])

    def evict_before(self, watermark: int) -> None:
        for row in self.debts.settled(self.written):  # their pairs' windows are written: let go
            self._gone(row)
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
                        if side == 0 and self.matched is not None:
                            let_left_go(self, row)
                        if not self.debts.evicted(key, side, row):  # a row that owes pairs stays kept
                            self._gone(row)
                sides[side][:] = keep
            if not sides[0] and not sides[1]:
                del self.rows[key]

    def lowest(self, pk: PartitionKey, floor: int) -> int | None:
        live = self.live.get(pk)
        return live.lowest(floor) if live is not None else None

    def snapshot(self, pk: PartitionKey) -> Any:
        # a retired row (pair_holds) goes too: restored kept, a replayed partner meets it again
        rows = [(key, side, r) for key, sides in self.rows.items() for side in (0, 1) for r in sides[side]
                if r[2] == pk] + self.debts.retired_of(pk)
        if self.matched is not None:  # how = "left": whether each left row found a partner, too
            met, owing = self.matched, self.debts.retired
            return [(key, side, r[0], r[1], r[3], (pk, r[1]) in met or (pk, r[1]) in owing) for key, side, r in rows]
        return [(key, side, r[0], r[1], r[3]) for key, side, r in rows]

    def restore(self, pk: PartitionKey, state: Any) -> None:
        self.drop(pk)
        live = self.live[pk] = LiveOffsets()
        for key, side, ts, offset, value, *met in sorted(state, key=lambda r: r[3]):
            if met and met[0] and self.matched is not None:
                self.matched.add((pk, offset))
            live.add(offset)
            sides = self.rows.setdefault(key, ([], []))
            sides[side].append((ts, offset, pk, value))
            sides[side].sort(key=lambda r: r[0])
            self.shape.see(side, value)
            self.count += 1
            self.bytes += size_of(value)
            until = ts + self.upper if side == 0 else ts - self.lower
            heapq.heappush(self._expiry, (until, next(self._seq), key))

    def drop(self, pk: PartitionKey) -> None:
        self.live.pop(pk, None)
        for row in self.debts.drop(pk):
            self.count -= 1
            self.bytes -= size_of(row[3])
        if self.matched is not None:
            self.matched = {m for m in self.matched if m[0] != pk}
            self.released = [r for r in self.released if r[0] != pk]
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
