"""Session windows: per key, records less than `gap` apart share a session.

A session spans [first record's time, last record's time + gap). A record that falls within `gap`
of two sessions bridges them and they merge (aggregates merge with their `merge`). Sessions are
kept per partition, like panes, so a revoked partition's share can be dropped alone; at close,
sessions of one key from different partitions that overlap are emitted as one.

Closing is driven by a heap of session ends, so a tick costs O(sessions closing), not O(open).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Hashable
from typing import Any

PartitionKey = tuple[str, Hashable]


class Session:
    """One partition's share of one key's session: the Pane contract plus its bounds."""

    __slots__ = ("id", "key", "start", "last", "min_offset", "table", "records", "count")

    def __init__(self, sid: int, key: Any, ts: int, offset: int, table: dict[Any, list[Any]] | None):
        self.id = sid
        self.key = key
        self.start = self.last = ts
        self.min_offset = offset
        self.table = table
        self.records: list[tuple[int, dict[str, Any]]] | None = None if table is not None else []
        self.count = 0

    def end(self, gap: int) -> int:
        return self.last + gap


class SessionStore:
    def __init__(self, gap_ms: int, merge_tables: Callable[[dict[Any, Any], dict[Any, Any]], None] | None):
        self.gap = gap_ms
        self._merge_tables = merge_tables
        # partition -> key -> its open sessions (the fold's short path reads it: engine/session_path.py)
        self.by_partition: dict[PartitionKey, dict[Any, list[Session]]] = {}
        self._heap: list[tuple[int, int, PartitionKey, Session]] = []  # (end when pushed, id, partition, session)
        self._ids = itertools.count(1)
        self.alive: dict[int, Session] = {}

    # --- joining ------------------------------------------------------------------------------
    def overlapping(self, pk: PartitionKey, key: Any, ts: int) -> list[Session]:
        """The open sessions of `key` in `pk` a record at `ts` falls into or bridges."""
        by_key = self.by_partition.get(pk)
        sessions = by_key.get(key) if by_key is not None else None
        if not sessions:
            return []
        gap = self.gap
        if len(sessions) == 1:
            s = sessions[0]
            return [s] if s.start < ts + gap and ts < s.last + gap else []
        return [s for s in sessions if s.start < ts + gap and ts < s.last + gap]

    def open(self, pk: PartitionKey, key: Any, ts: int, offset: int, table: dict[Any, list[Any]] | None) -> Session:
        s = Session(next(self._ids), key, ts, offset, table)
        self.by_partition.setdefault(pk, {}).setdefault(key, []).append(s)
        self.alive[s.id] = s
        heapq.heappush(self._heap, (s.end(self.gap), s.id, pk, s))
        return s

    def extend(self, pk: PartitionKey, hits: list[Session], ts: int) -> tuple[Session, list[Session]]:
        """Stretch the first hit to cover `ts` and fold the others into it; returns it and the folded."""
        into = hits[0]
        if ts < into.start:
            into.start = ts
        if ts > into.last:
            into.last = ts
        folded = hits[1:]
        if folded:
            siblings = self.by_partition[pk][into.key]
            for s in folded:
                into.start, into.last = min(into.start, s.start), max(into.last, s.last)
                into.min_offset = min(into.min_offset, s.min_offset)
                into.count += s.count
                if into.table is not None and self._merge_tables is not None:
                    self._merge_tables(into.table, s.table)  # type: ignore[arg-type]
                elif into.records is not None:
                    into.records.extend(s.records or ())
                siblings.remove(s)
                del self.alive[s.id]
        return into, folded

    # --- closing ------------------------------------------------------------------------------
    def take(self, watermark: int, mark: Callable[[PartitionKey], int]) -> list[list[tuple[PartitionKey, Session]]]:
        """Remove and return the sessions that can no longer grow, grouped into what is emitted as one
        (one key's overlapping sessions across partitions), in order of their end."""
        gap, heap = self.gap, self._heap
        out: list[list[tuple[PartitionKey, Session]]] = []
        waiting: list[tuple[int, int, PartitionKey, Session]] = []
        while heap and heap[0][0] <= watermark:
            entry = heapq.heappop(heap)
            _, sid, pk, s = entry
            if sid not in self.alive:
                continue  # folded into another session
            if s.end(gap) != entry[0]:
                heapq.heappush(heap, (s.end(gap), sid, pk, s))  # it grew since: look again at its new end
                continue
            group = self._group(pk, s)
            if all(m.end(gap) <= mark(p) for p, m in group):
                for p, m in group:
                    self._remove(p, m)
                out.append(group)
            else:
                waiting.append(entry)  # a partition that joined late holds it: it closes by that one's progress
        for entry in waiting:
            heapq.heappush(heap, entry)
        return out

    def take_all(self) -> list[list[tuple[PartitionKey, Session]]]:
        out = []
        for pk in list(self.by_partition):
            for key in list(self.by_partition.get(pk, {})):
                for s in list(self.by_partition.get(pk, {}).get(key, [])):
                    if s.id in self.alive:
                        group = self._group(pk, s)
                        for p, m in group:
                            self._remove(p, m)
                        out.append(group)
        self._heap.clear()
        out.sort(key=lambda g: max(m.end(self.gap) for _, m in g))
        return out

    def _group(self, pk: PartitionKey, s: Session) -> list[tuple[PartitionKey, Session]]:
        """`s` and, transitively, every session of its key in other partitions that overlaps it."""
        group = [(pk, s)]
        lo, hi = s.start, s.end(self.gap)
        if len(self.by_partition) > 1:
            changed = True
            while changed:
                changed = False
                for p, by_key in self.by_partition.items():
                    for m in by_key.get(s.key, ()):
                        if m.start < hi and lo < m.end(self.gap) and all(m is not g for _, g in group):
                            group.append((p, m))
                            lo, hi = min(lo, m.start), max(hi, m.end(self.gap))
                            changed = True
        return group

    def _remove(self, pk: PartitionKey, s: Session) -> None:
        by_key = self.by_partition[pk]
        siblings = by_key[s.key]
        siblings.remove(s)
        if not siblings:
            del by_key[s.key]
        del self.alive[s.id]

    def of(self, pk: PartitionKey) -> list[Session]:
        return [s for sessions in self.by_partition.get(pk, {}).values() for s in sessions]

    def adopt(self, pk: PartitionKey, s: Session) -> None:
        """Take in a session restored from a checkpoint, under a fresh id."""
        s.id = next(self._ids)
        self.by_partition.setdefault(pk, {}).setdefault(s.key, []).append(s)
        self.alive[s.id] = s
        heapq.heappush(self._heap, (s.end(self.gap), s.id, pk, s))

    def drop(self, pk: PartitionKey) -> list[Session]:
        """Forget a partition's open sessions (a revoke); returns them."""
        gone = [s for sessions in self.by_partition.pop(pk, {}).values() for s in sessions]
        for s in gone:
            self.alive.pop(s.id, None)
        return gone

    def open_count(self) -> int:
        return len(self.alive)
