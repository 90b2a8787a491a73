"""The event-time watermark: how far the input has surely progressed.

A partition's watermark is the largest time it has delivered minus `lateness`. A partition that has
delivered nothing for `idle_timeout` lets the wall clock minus `lateness` carry it, so a quiet
stream still closes its windows on time, as the cron job it replaces did. The pipeline watermark is
the minimum over the partitions this process owns; a partition just assigned holds it back until it
delivers or goes idle, so a slow first fetch never makes its records late. The pipeline watermark
never moves back, so a partition taken over in a rebalance, replaying older records, is judged by
its own mark: its windows close, and its records count as late, by how far it has got.
"""

from __future__ import annotations

from collections.abc import Hashable

NEVER = -(2**62)


class WatermarkTracker:
    def __init__(self, lateness_ms: int, idle_timeout_s: float):
        self.lateness_ms = lateness_ms
        self.idle_timeout_s = idle_timeout_s
        self._max_ts: dict[Hashable, int] = {}
        self._last_seen: dict[Hashable, float] = {}
        self._current = NEVER
        self.marks: dict[Hashable, int] = {}

    def assign(self, partition: Hashable, now: float) -> None:
        self._max_ts.setdefault(partition, NEVER)
        self._last_seen.setdefault(partition, now)

    def observe(self, partition: Hashable, max_ts: int, now: float) -> None:
        """A batch from `partition` arrived at monotonic time `now` with largest time `max_ts`."""
        if max_ts > self._max_ts.get(partition, NEVER):
            self._max_ts[partition] = max_ts
        self._last_seen[partition] = now

    def forget(self, partition: Hashable) -> None:
        """The partition is revoked or finished: it no longer holds the watermark back."""
        self._max_ts.pop(partition, None)
        self._last_seen.pop(partition, None)
        self.marks.pop(partition, None)

    def max_ts(self, partition: Hashable) -> int | None:
        ts = self._max_ts.get(partition, NEVER)
        return None if ts == NEVER else ts

    def has_delivered(self, partition: Hashable) -> bool:
        return self._max_ts.get(partition, NEVER) != NEVER

    def advance(self, now: float, wall_ms: int, caught_up: bool = True) -> int:
        """Recompute the partitions' marks and the pipeline watermark; the latter never moves back.

        Idleness only counts when the pipeline is `caught_up` (nothing waiting in its input queue):
        a partition that is quiet because the pipeline is behind is not idle, it is queued.
        """
        if not self._max_ts:
            return self._current
        idle_mark = wall_ms - self.lateness_ms
        marks = self.marks
        for p, ts in self._max_ts.items():
            mark = ts - self.lateness_ms if ts != NEVER else NEVER
            if caught_up and now - self._last_seen[p] >= self.idle_timeout_s and idle_mark > mark:
                mark = idle_mark
            if mark > marks.get(p, NEVER):
                marks[p] = mark
        candidate = min(marks.get(p, NEVER) for p in self._max_ts)
        if candidate > self._current:
            self._current = candidate
        return self._current

    def mark(self, partition: Hashable) -> int:
        """How far this partition has progressed: a partition that joined late (a rebalance) may be
        behind the pipeline watermark, and its windows close by its own progress."""
        return min(self._current, self.marks.get(partition, self._current))

    @property
    def current(self) -> int:
        return self._current
