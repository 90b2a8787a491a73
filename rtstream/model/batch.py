"""The batch a source hands over: records of one partition, in offset order."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from rtstream.model.record import SourceRecord


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
