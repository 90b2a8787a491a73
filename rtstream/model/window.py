"""A window as stages and sinks see it, and how window bounds are spelled."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any


# a window's bounds are spelled a dozen times on its way out (rows, history, logs, file names):
# the few thousand most recent are remembered
@lru_cache(maxsize=4096)
def iso_utc(ms: int) -> str:
    """Epoch ms as ISO-8601 UTC with a Z, the way every output row spells window bounds."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    if ms % 1000:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class Window:
    """A closed window as stages see it: bounds in epoch ms and the rows it holds.

    >>> w = Window(0, 300_000, [])
    >>> w.start_iso, w.end_iso
    ('1970-01-01T00:00:00Z', '1970-01-01T00:05:00Z')
    """

    start_ms: int
    end_ms: int
    records: list[dict[str, Any]] = field(default_factory=list)
    key: Any = None  # set for per-key windows (sessions); None for tumbling
    input_count: int = 0  # records that went into the window
    final: bool = True  # False for a running result (emit = "updates"), which a later row replaces
    # what tells this window apart from others of the same bounds and key: a count window's first
    # record, "source/partition@offset" (rows carry it as `window_id`); None for time windows
    ident: str | None = None

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.start_ms / 1000, tz=UTC)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(self.end_ms / 1000, tz=UTC)

    @property
    def start_iso(self) -> str:
        return iso_utc(self.start_ms)

    @property
    def end_iso(self) -> str:
        return iso_utc(self.end_ms)

    @property
    def id(self) -> tuple[int, int, Any, str | None]:
        return (self.start_ms, self.end_ms, self.key, self.ident)
