"""The commit rule: a position is safe only when everything before it is written or dead-lettered.

Per partition, the safe position is the smallest of: where processing has reached, and the first
offset of every window share that is still open or waiting for the sinks. It is a low-watermark,
so commits never run ahead of a slow window, whatever order windows finish in.
"""

from __future__ import annotations

from collections.abc import Hashable
from collections.abc import Set as AbstractSet
from typing import NamedTuple

PartitionKey = tuple[str, Hashable]  # (source name, partition)


class Mark(NamedTuple):
    """Saved beside a committed position. On replay from the position, a record below `next_offset`
    whose window ends by `written_upto` was already counted: it is skipped, not emitted again."""

    written_upto: int  # every window ending at or before this time (epoch ms) is written
    next_offset: int  # offsets below this one had been processed


class CommitTracker:
    def __init__(self) -> None:
        self._next: dict[PartitionKey, int] = {}
        self._holds: dict[PartitionKey, dict[Hashable, int]] = {}

    def processed(self, pk: PartitionKey, end: int) -> None:
        """Every record of `pk` before `end` is now in a window or in dead letters."""
        self._next[pk] = end

    def hold(self, pk: PartitionKey, holder: Hashable, offset: int) -> None:
        holds = self._holds.setdefault(pk, {})
        if holder not in holds or offset < holds[holder]:
            holds[holder] = offset

    def release(self, pk: PartitionKey, holder: Hashable) -> None:
        holds = self._holds.get(pk)
        if holds is not None:
            holds.pop(holder, None)

    def drop(self, pk: PartitionKey) -> None:
        self._next.pop(pk, None)
        self._holds.pop(pk, None)

    def next(self, pk: PartitionKey) -> int | None:
        return self._next.get(pk)

    def safe(self, pk: PartitionKey, ignoring: AbstractSet[Hashable] = frozenset()) -> int | None:
        """The position to commit; `ignoring` holders: as it will be once they are released."""
        nxt = self._next.get(pk)
        if nxt is None:
            return None
        holds = self._holds.get(pk)
        if not holds:
            return nxt
        return min(nxt, min((off for h, off in holds.items() if h not in ignoring), default=nxt))

    def safe_positions(self, source: str) -> dict[Hashable, int]:
        out = {}
        for pk in self._next:
            if pk[0] == source:
                pos = self.safe(pk)
                if pos is not None:
                    out[pk[1]] = pos
        return out
