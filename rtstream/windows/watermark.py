"""The event-time watermark: how far the input has surely progressed.

A partition's watermark is the largest time it has delivered minus `lateness`. A partition that has
delivered nothing for `idle_timeout` lets the wall clock minus `lateness` carry it, so a quiet
stream still closes its windows on time, as the cron job it replaces did. The pipeline watermark is
the minimum over the partitions this process owns; a partition just assigned holds it back until it
delivers or goes idle, so a slow first fetch never makes its records late.
"""

from __future__ import annotations

from typing import Hashable

NEVER = -(2**62)


class WatermarkTracker:
    def __init__(self, lateness_ms: int, idle_timeout_s: float):
        self.lateness_ms = lateness_ms
        self.idle_timeout_s = idle_timeout_s
        self._max_ts: dict[Hashable, int] = {}
        self._last_seen: dict[Hashable, float] = {}
        self._current = NEVER

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

    def has_delivered(self, partition: Hashable) -> bool:
        return self._max_ts.get(partition, NEVER) != NEVER

    def advance(self, now: float, wall_ms: int) -> int:
        """Recompute and return the pipeline watermark; it never moves backwards."""
        if not self._max_ts:
            return self._current
        idle_mark = wall_ms - self.lateness_ms
        candidate = None
        for p, ts in self._max_ts.items():
            mark = ts - self.lateness_ms if ts != NEVER else NEVER
            if now - self._last_seen[p] >= self.idle_timeout_s and idle_mark > mark:
                mark = idle_mark
            if candidate is None or mark < candidate:
                candidate = mark
        if candidate is not None and candidate > self._current:
            self._current = candidate
        return self._current

    @property
    def current(self) -> int:
        return self._current
