"""A stream-table join in event time (Flink's `FOR SYSTEM_TIME AS OF` on an event-time versioned table):
a stream row at time t meets its key's version as of t, whatever order the two sources are read in.

- The table keeps versions per key (a change at its time; a null value deletes), sorted by time.
- A stream row waits (bounded by `max_waiting`, holding its partition's commit) until the table
  side's watermark has passed t: every change at or before t has then arrived. It is joined then, and
  handed back to the fold through `take_released` (rtstream.engine.released), in its own window.
- The table side's watermark is the lowest mark of its partitions (rtstream.windows.watermark); a
  finished one (a file read to its end) no longer holds it. Nothing assigned yet: it holds.
- A version is evicted once every stream partition's watermark (and every waiting row) has passed the
  next version of its key; the last one once a delete or `ttl` makes it useless at that time.
- A change behind what the stream was already joined up to applies to the rows to come only
  (`late_changes`); one without a time of its own (a tombstone) follows its partition's changes before it.
- Without a checkpoint, a table partition's commit stays at its first change read (see `pinned`).
Holds and checkpoints as rtstream.engine.stateful says. Pure: no I/O, no await.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_right, insort
from typing import Any

from rtstream.engine.join_keys import NO_MATCH, join_key, tombstone_key
from rtstream.engine.join_rows import RowShape
from rtstream.engine.stateful import LiveOffsets, StatefulStep, size_of
from rtstream.model.positions import PartitionKey
from rtstream.model.record import Record
from rtstream.model.window import iso_utc
from rtstream.windows.clock import MAX_MS
from rtstream.windows.watermark import NEVER, WatermarkTracker

# a version: (time, seq, value or None for a delete, offset, partition)
Version = tuple[int, int, Any, int, PartitionKey]
# a waiting stream row: (time, seq, partition, offset, timestamp, record key, value)
Waiting = tuple[int, int, PartitionKey, int, Any, Any, dict[str, Any]]
Released = tuple[PartitionKey, Any, dict[str, Any]]


def _ts(v: Version) -> int:
    return v[0]


def _order(v: Version) -> tuple[int, int]:
    return v[0], v[1]


class TemporalTable(StatefulStep):

    def __init__(self, name: str, stream: str, table: str, stream_on: str, table_on: str, how: str,
                 ttl_ms: int | None, left_prefix: str, right_prefix: str, max_keys: int, max_waiting: int):
        super().__init__(name)
        self.stream, self.table = stream, table
        self.sides = (stream, table)
        self.stream_on, self.table_on = stream_on, table_on
        self.how = how
        self.ttl_ms = ttl_ms
        self.shape = RowShape(stream_on, table_on, left_prefix, right_prefix)  # rtstream.engine.join_rows
        self.max_keys, self.max_waiting = max_keys, max_waiting
        self.versions: dict[Any, list[Version]] = {}
        self.waiting: list[Waiting] = []  # a heap by time
        self._prune: list[tuple[int, int, Any]] = []  # (horizon from which a key may shed versions, seq, key)
        self._seq = itertools.count()
        self.parts: dict[PartitionKey, bool] = {}  # the sides' partitions assigned here -> finished
        self.part_time: dict[PartitionKey, int] = {}  # a table partition's latest change time
        self.joined_upto = NEVER  # every stream row before this was joined (the table side's watermark)
        self.horizon = NEVER  # versions no stream row before this needs are gone
        self.live: dict[PartitionKey, LiveOffsets] = {}
        # a table partition's first change read: its commit stays there until a checkpoint covers it.
        # A superseded version is evicted once the stream's watermark is past its successor, but stream
        # rows that met it may still be in windows not yet written and committed: a restart without a
        # checkpoint replays them, and they must meet it again (so the changelog is read again whole)
        self.pinned: dict[PartitionKey, int] = {}
        self.late_changes = 0
        self.count = 0
        self.bytes = 0
        self._out: list[Released] = []
        self.takes_nulls = {table: self.tombstone}

    # -- records -----------------------------------------------------------------------------------
    def at(self, pk: PartitionKey, rec: Any, value: dict[str, Any]) -> list[dict[str, Any]]:
        if pk[0] == self.table:
            try:
                ts: int | None = self.time_of(rec, value)
            except ValueError:
                ts = None  # no time of its own: it follows the partition's changes before it
            key = join_key(value, self.table_on)
            if key is not NO_MATCH:  # a null key is no entry: no stream row could match it
                self.shape.see(1, value)
                self._change(pk, rec, key, value, ts)
            return []
        if pk[0] != self.stream:
            return [value]
        key = join_key(value, self.stream_on)  # a missing or list/object key raises: dead-lettered alone
        self.shape.see(0, value)
        t = self.time_of(rec, value)
        if t < self.joined_upto:  # the table side is past t already: nothing at or before t can change
            if t < self.horizon:
                raise ValueError(f"late: the table's versions before {iso_utc(self.horizon)} are evicted "
                                 f"(the row's time is {iso_utc(t)})")
            row = self._join(key, t, value)
            return [row] if row is not None else []
        if len(self.waiting) >= self.max_waiting:
            raise ValueError(f"max_waiting = {self.max_waiting} stream rows already wait for the table "
                             f"{self.table!r} to reach their time")
        heapq.heappush(self.waiting, (t, next(self._seq), pk, rec.offset, rec.timestamp, rec.key, value))
        self.bytes += size_of(value)
        self._keep(pk, rec.offset)
        return []

    def tombstone(self, pk: PartitionKey, rec: Any) -> None:
        """A null value on the table's changelog deletes its record key's entry from then on."""
        key = tombstone_key(rec.key, self.versions)  # rtstream.engine.join_keys
        self._change(pk, rec, key, None, None)

    def _change(self, pk: PartitionKey, rec: Any, key: Any, value: dict[str, Any] | None, ts: int | None) -> None:
        last = self.part_time.get(pk, NEVER)
        if ts is None:
            ts = max(last, self.joined_upto)
        elif ts < self.joined_upto:  # later than lateness allows: it applies to the rows to come (as
            self.late_changes += 1     # Flink's), the rows already joined keep the version they met
        vs = self.versions.get(key)
        if vs is None:
            if value is None:
                return  # deleting what the table does not have
            if len(self.versions) >= self.max_keys:
                raise ValueError(f"the table already keeps max_keys = {self.max_keys} keys")
            vs = self.versions[key] = []
        if ts > last:
            self.part_time[pk] = ts
        self.pinned.setdefault(pk, rec.offset)
        seq = next(self._seq)
        insort(vs, (ts, seq, value, rec.offset, pk), key=_order)
        self.count += 1
        if value is not None:
            self.bytes += size_of(value)
        heapq.heappush(self._prune, (ts, seq, key))
        if self.ttl_ms is not None and value is not None:
            heapq.heappush(self._prune, (ts + self.ttl_ms + 1, seq, key))
        self._keep(pk, rec.offset)

    def _join(self, key: Any, t: int, value: dict[str, Any]) -> dict[str, Any] | None:
        """The stream row joined with its key's version as of t (None: dropped by an inner join)."""
        found = None
        vs = self.versions.get(key) if key is not NO_MATCH else None
        if vs:
            i = bisect_right(vs, t, key=_ts) - 1
            if i >= 0 and vs[i][2] is not None and (self.ttl_ms is None or t - vs[i][0] <= self.ttl_ms):
                found = vs[i][2]
        if found is None and self.how != "left":
            return None
        shape = self.shape
        shape.set_time_field(self.time_field)
        # an enriched row keeps its own time; one the table lacks has the table's fields as null
        return shape.row(value, found, value.get(self.time_field))

    # -- the watermark -----------------------------------------------------------------------------
    def assigned(self, pk: PartitionKey) -> None:
        if pk[0] in self.sides:
            self.parts[pk] = False

    def finished(self, pk: PartitionKey) -> None:
        if pk in self.parts:
            self.parts[pk] = True

    def _side_mark(self, wm: WatermarkTracker, source: str) -> int:
        marks = [MAX_MS if done else wm.marks.get(pk, NEVER) for pk, done in self.parts.items() if pk[0] == source]
        return min(marks) if marks else NEVER

    def evict(self, wm: WatermarkTracker) -> None:
        table_mark = self._side_mark(wm, self.table)
        if table_mark > self.joined_upto:
            self._release(table_mark)
        stream_mark = self._side_mark(wm, self.stream)
        horizon = min(stream_mark, self.waiting[0][0] if self.waiting else MAX_MS, self.joined_upto)
        if horizon > self.horizon:
            self.horizon = horizon
        super().evict(wm)  # evict_before, then the holds of what was let go

    def _release(self, upto: int) -> None:
        """Join every waiting row before `upto` (they go to the fold in time order)."""
        self.joined_upto = upto
        w = self.waiting
        while w and w[0][0] < upto:
            t, _, pk, offset, timestamp, rkey, value = heapq.heappop(w)
            self.bytes -= size_of(value)
            self.live[pk].remove(offset)
            self.let_go(pk)
            row = self._join(join_key(value, self.stream_on), t, value)
            if row is not None:
                self._out.append((pk, Record(value, offset, timestamp, rkey), row))

    def take_released(self, final: bool = False) -> list[Released]:
        """The stream rows joined since the last call; `final`: every source has ended, all of them."""
        if final and self.waiting:
            self._release(MAX_MS + 1)
        out, self._out = self._out, []
        return out

    def evict_before(self, watermark: int) -> None:
        h, todo = self.horizon, self._prune
        while todo and todo[0][0] <= h:
            key = heapq.heappop(todo)[2]
            vs = self.versions.get(key)
            if not vs:
                continue
            i = bisect_right(vs, h, key=_ts) - 1  # the version in force at h; those before it are of no use
            if i >= 0:
                gone = vs[:i]
                v = vs[i]
                if v[2] is None or (self.ttl_ms is not None and v[0] + self.ttl_ms < h):
                    gone.append(v)  # deleted or expired from h on
                del vs[:len(gone)]
                for g in gone:
                    self._forget(g)
            if not vs:
                del self.versions[key]

    def _forget(self, v: Version) -> None:
        self.count -= 1
        if v[2] is not None:
            self.bytes -= size_of(v[2])
        self.live[v[4]].remove(v[3])
        self.let_go(v[4])

    def _keep(self, pk: PartitionKey, offset: int) -> None:
        live = self.live.get(pk)
        if live is None:
            live = self.live[pk] = LiveOffsets()
        live.add(offset)
        self.kept(pk, offset)

    # -- checkpoints -------------------------------------------------------------------------------
    def lowest(self, pk: PartitionKey, floor: int) -> int | None:
        live = self.live.get(pk)
        low = live.lowest(floor) if live is not None else None
        pin = self.pinned.get(pk)
        if pin is not None and pin >= floor:
            low = pin if low is None else min(low, pin)
        return low

    def snapshot(self, pk: PartitionKey) -> Any:
        versions = [(key, v[0], v[2], v[3]) for key, vs in self.versions.items() for v in vs if v[4] == pk]
        waiting = [(w[0], w[3], w[4], w[5], w[6]) for w in sorted(self.waiting) if w[2] == pk]
        return {"versions": versions, "waiting": waiting, "time": self.part_time.get(pk)}

    def restore(self, pk: PartitionKey, state: Any) -> None:
        self.drop(pk)
        if not isinstance(state, dict):  # saved by the processing-time table (rtstream.engine.table_state)
            state = {"versions": [(k, ts, v, off) for k, v, ts, off in state], "waiting": [], "time": None}
        live = self.live[pk] = LiveOffsets()
        items = [(off, "v", e) for *e, off in state["versions"]] + [(w[1], "w", w) for w in state["waiting"]]
        for offset, kind, e in sorted(items, key=lambda i: i[0]):
            live.add(offset)
            seq = next(self._seq)
            if kind == "v":
                key, ts, value = e
                insort(self.versions.setdefault(key, []), (ts, seq, value, offset, pk), key=_order)
                self.count += 1
                self.bytes += size_of(value) if value is not None else 0
                if value is not None:
                    self.shape.see(1, value)
                heapq.heappush(self._prune, (ts, seq, key))
                if self.ttl_ms is not None and value is not None:
                    heapq.heappush(self._prune, (ts + self.ttl_ms + 1, seq, key))
            else:
                t, _, timestamp, rkey, value = e
                heapq.heappush(self.waiting, (t, seq, pk, offset, timestamp, rkey, value))
                self.bytes += size_of(value)
                self.shape.see(0, value)
        if state["time"] is not None:
            self.part_time[pk] = state["time"]
        self.parts.setdefault(pk, False)

    def drop(self, pk: PartitionKey) -> None:
        self.live.pop(pk, None)
        self.part_time.pop(pk, None)
        self.pinned.pop(pk, None)
        for key in list(self.versions):
            vs = self.versions[key]
            mine = [v for v in vs if v[4] == pk]
            if mine:
                vs[:] = [v for v in vs if v[4] != pk]
                self.count -= len(mine)
                self.bytes -= sum(size_of(v[2]) for v in mine if v[2] is not None)
                if not vs:
                    del self.versions[key]
        gone = [w for w in self.waiting if w[2] == pk]
        if gone:
            self.waiting = [w for w in self.waiting if w[2] != pk]
            heapq.heapify(self.waiting)
            self.bytes -= sum(size_of(w[6]) for w in gone)

    def forget(self, pk: PartitionKey) -> None:
        super().forget(pk)
        self.parts.pop(pk, None)

    def figures(self) -> tuple[int, int, int]:
        return self.count + len(self.waiting), len(self.versions), self.bytes
