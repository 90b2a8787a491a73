"""Records, the batches sources hand over, and the windows stages receive."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol


class SourceRecord(Protocol):
    """What the engine reads of an input record; any object with these attributes will do.

    `value` is the raw bytes (or, for a batch marked `decoded`, the decoded JSON), `offset` the
    source position, `timestamp` the source's own persisted time in epoch ms (Kafka timestamp, spool
    arrival time) or None, `key` the optional message key. The Kafka source hands aiokafka's own
    record objects over as they are, so no object is built per message on the hot path.
    """

    @property
    def value(self) -> Any: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int | None: ...
    @property
    def key(self) -> Any: ...


class Record:
    """One input record built by a source: its value, optional key, time in epoch ms and offset."""

    __slots__ = ("value", "key", "timestamp", "offset")

    def __init__(self, value: Any, offset: int, timestamp: int | None = None, key: Any = None):
        self.value = value
        self.offset = offset
        self.timestamp = timestamp
        self.key = key

    def __repr__(self) -> str:
        return f"Record(offset={self.offset}, timestamp={self.timestamp}, key={self.key!r}, value={self.value!r})"


@dataclass(slots=True)
class Batch:
    """Records from one partition of one source, in offset order.

    `end` is the position to resume from once every record here is written: committing it
    means "everything before this is done".
    """

    source: str
    partition: Hashable
    records: Sequence[SourceRecord]
    end: int
    decoded: bool = False
    epoch: int = 0
    key_field: str | None = None  # the record key is this field of the value, not Record.key
    read: int | None = None  # records read from the source, where per-record stages already changed `records`


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
    def id(self) -> tuple[int, int, Any]:
        return (self.start_ms, self.end_ms, self.key)
