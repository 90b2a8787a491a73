"""A stream-table join's table: last value per key from a changelog, with TTL, in the checkpoints
(holds and checkpoints as rtstream.engine.stateful says)."""

from __future__ import annotations

import heapq
from typing import Any

from rtstream.engine.join_keys import NO_MATCH, join_key, tombstone_key
from rtstream.engine.join_rows import RowShape
from rtstream.engine.pair_holds import PairDebts, last_window_end
from rtstream.engine.stateful import LiveOffsets, StatefulStep, size_of
from rtstream.model.positions import PartitionKey
from rtstream.windows.watermark import NEVER


class TableState(StatefulStep):
    """A table kept from a changelog (last value per key; a null value, or a Kafka tombstone, deletes)
    and the stream's rows enriched with the current value of their key."""

    def __init__(self, name: str, stream: str, table: str, stream_on: str, table_on: str, how: str,
                 ttl_ms: int | None, left_prefix: str, right_prefix: str, max_keys: int):
        super().__init__(name)
        self.stream, self.table = stream, table
        self.sides = (stream, table)
        self.stream_on, self.table_on = stream_on, table_on
        self.how = how
        self.ttl_ms = ttl_ms
        self.shape = RowShape(stream_on, table_on, left_prefix, right_prefix)  # rtstream.engine.join_rows
        self.max_keys = max_keys
        self.values: dict[Any, tuple[dict[str, Any], int, int, PartitionKey]] = {}  # key -> (row, time, offset, pk)
        self._expiry: list[tuple[int, Any]] = []
        self._watermark = NEVER
        self.live: dict[PartitionKey, LiveOffsets] = {}
        self.bytes = 0
        self.takes_nulls = {table: self.tombstone}  # the fold hands it the table's null values
        # an entry replaced, deleted or expired stays kept (its offset held, in the checkpoints) until
        # the windows of the rows it enriched are written, as an interval join's row (pair_holds)
        self.debts = PairDebts()

    def at(self, pk: PartitionKey, rec: Any, value: dict[str, Any]) -> list[dict[str, Any]]:
        shape = self.shape
        if pk[0] == self.table:
            key = join_key(value, self.table_on)
            if key is not NO_MATCH:  # a null key is no entry: no stream row could match it
                shape.see(1, value)
                self._put(pk, rec, key, value)
            return []  # a table row changes the table only
        if pk[0] != self.stream:
            return [value]
        key = join_key(value, self.stream_on)
        found = self.values.get(key) if key is not NO_MATCH else None
        if found is None and self.how != "left":
            return []
        if found is not None:
            try:
                ts = self.time_of(rec, value)
            except ValueError:
                pass  # the window refuses the row, with its reason: it owes the entry nothing
            else:
                self.debts.paired((found[3], found[2]), pk, last_window_end(ts, self.size_ms, self.hop_ms))
        shape.see(0, value)
        shape.set_time_field(self.time_field)
        # an enriched row keeps its own time; one the table lacks has the table's fields as null
        return [shape.row(value, None if found is None else found[0], value.get(self.time_field))]

    def tombstone(self, pk: PartitionKey, rec: Any) -> None:
        """A null value on the table's changelog: its record key's entry is deleted."""
        key = tombstone_key(rec.key, self.values)  # rtstream.engine.join_keys
        self._put(pk, rec, key, None)

    def _put(self, pk: PartitionKey, rec: Any, key: Any, value: dict[str, Any] | None) -> None:
        old = self.values.pop(key, None)
        if old is not None:  # the entry it replaces no longer holds its commit (once what it enriched is written)
            self._gone(key, old)
            self._rehold(old[3])
        if value is None:
            return  # a delete
        if len(self.values) >= self.max_keys:
            raise ValueError(f"the table already keeps max_keys = {self.max_keys} keys")
        try:
            ts = self.time_of(rec, value)
        except ValueError:
            ts = self._watermark  # a table row without a time lives from the watermark it arrived at
        self.values[key] = (value, ts, rec.offset, pk)
        self.bytes += size_of(value)
        if self.ttl_ms is not None:
            heapq.heappush(self._expiry, (ts + self.ttl_ms, key))
        live = self.live.get(pk)
        if live is None:
            live = self.live[pk] = LiveOffsets()
        live.add(rec.offset)
        self.kept(pk, rec.offset)

    def evict_before(self, watermark: int) -> None:
        for row in self.debts.settled(self.written):
            self._gone(None, row[3], settled=True)
            self.let_go(row[2])
        self._watermark = watermark
        exp = self._expiry
        while exp and exp[0][0] < watermark:
            until, key = heapq.heappop(exp)
            entry = self.values.get(key)
            if entry is not None and entry[1] + self.ttl_ms < watermark:  # type: ignore[operator]
                del self.values[key]
                self._gone(key, entry)
                self.let_go(entry[3])

    def _gone(self, key: Any, entry: tuple[dict[str, Any], int, int, PartitionKey], settled: bool = False) -> None:
        if settled or not self.debts.evicted(key, 1, (entry[1], entry[2], entry[3], entry)):
            self.bytes -= size_of(entry[0])
            self.live[entry[3]].remove(entry[2])

    def lowest(self, pk: PartitionKey, floor: int) -> int | None:
        live = self.live.get(pk)
        return live.lowest(floor) if live is not None else None

    def snapshot(self, pk: PartitionKey) -> Any:
        # a retired entry goes too: restored as its key's entry unless a newer one is there
        return [(key, e[0], e[1], e[2]) for key, e in self.values.items() if e[3] == pk] + [
            (key, r[3][0], r[3][1], r[3][2]) for key, _, r in self.debts.retired_of(pk)]

    def restore(self, pk: PartitionKey, state: Any) -> None:
        self.drop(pk)
        if isinstance(state, dict):  # saved in event time (rtstream.engine.temporal_state): the last versions
            last = {key: (key, value, ts, off) for key, ts, value, off in sorted(state["versions"], key=lambda v: v[1])}
            state = [e for e in last.values() if e[1] is not None]
        live = self.live[pk] = LiveOffsets()
        newest = {key: offset for key, _, _, offset in sorted(state, key=lambda e: e[3])}
        for key, value, ts, offset in sorted(state, key=lambda e: e[3]):
            if newest[key] != offset:
                continue
            live.add(offset)
            self.values[key] = (value, ts, offset, pk)
            self.bytes += size_of(value)
            self.shape.see(1, value)
            if self.ttl_ms is not None:
                heapq.heappush(self._expiry, (ts + self.ttl_ms, key))

    def drop(self, pk: PartitionKey) -> None:
        self.live.pop(pk, None)
        for _, _, _, entry in self.debts.drop(pk):
            self.bytes -= size_of(entry[0])
        for key in [k for k, e in self.values.items() if e[3] == pk]:
            self.bytes -= size_of(self.values.pop(key)[0])

    def figures(self) -> tuple[int, int, int]:
        return len(self.values), len(self.values), self.bytes
