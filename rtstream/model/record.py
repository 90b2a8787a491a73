"""Records, the batches sources hand over, and the windows stages receive."""

from __future__ import annotations

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


