"""Which window a time belongs to. Windows are aligned to the epoch, like cron's schedule."""

from __future__ import annotations


class TumblingAssigner:
    """Fixed, non-overlapping windows of `size_ms`, aligned to the epoch.

    >>> TumblingAssigner(300_000).start(1_000_123)
    900000
    """

    def __init__(self, size_ms: int):
        self.size_ms = size_ms

    def start(self, ts: int) -> int:
        return ts - ts % self.size_ms

    def end(self, start: int) -> int:
        return start + self.size_ms
