"""Source positions and what a commit carries: the value types the engine, the sources and the sinks share."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from rtstream.model.window import Window


PartitionKey = tuple[str, Hashable]  # (source name, partition)


class Mark(NamedTuple):
    """Saved beside a committed position. On replay from the position, a record below `next_offset`
    whose window ends by `written_upto` was already counted: it is skipped, not emitted again."""

    written_upto: int  # every window ending at or before this time (epoch ms) is written
    next_offset: int  # offsets below this one had been processed


@dataclass(frozen=True)
class SourceCommit:
    """What to commit for one source: a position per partition, each with its mark."""

    positions: dict[Hashable, int]
    marks: dict[Hashable, Mark]


@dataclass
class WindowCommit:
    """What writing `window` makes safe to commit, for a sink that commits it in the same
    transaction as the window's rows: per consumer group, the offsets (with their marks as metadata)."""

    window: Window
    by_source: dict[str, SourceCommit]
    group_offsets: dict[str, dict[Any, Any]] = field(default_factory=dict)  # group -> {partition: OffsetAndMetadata}


@dataclass
class Assignment:
    """What a source decided for the partitions it was just given, before reading any of them."""

    source: str
    epoch: int  # batches carry it: a batch of an older epoch is not accepted
    starts: dict[Hashable, int]  # the decided start of every assigned partition
    marks: dict[Hashable, Mark] = field(default_factory=dict)  # committed with those starts
    resumable: set[Hashable] = field(default_factory=set)  # starts from the commit: a newer checkpoint may replace them


class PartitionEvents(Protocol):
    async def assigned(self, assignment: Assignment) -> dict[Hashable, int]:
        """Returns the start of every assigned partition (a restored checkpoint may move one on)."""
        ...

    async def revoked(self, source: str, partitions: list[Hashable]) -> None: ...


class NoPartitionEvents:
    """For a source used on its own (tests, tools): the decided starts stand."""

    async def assigned(self, assignment: Assignment) -> dict[Hashable, int]:
        return dict(assignment.starts)

    async def revoked(self, source: str, partitions: list[Hashable]) -> None:
        return None
