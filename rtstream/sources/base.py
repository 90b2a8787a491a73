"""The source contract: batches of records from partitions, and commits of safe positions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable
from typing import Any, ClassVar

from pydantic import Field

from rtstream.model.batch import Batch
from rtstream.model.positions import Mark, SourceCommit
from rtstream.model.registry import Component, ComponentConfig
from rtstream.where import WhereFiltered, WhereText


class SourceConfig(ComponentConfig):
    # only the records this expression holds for go into the windows (rtstream.where.language), checked
    # right after decoding, before any stage; the others are skipped (read, not dead-lettered)
    where: WhereText = Field(default=None, description='only records this holds for are windowed, e.g. '
                             '"kind == \'purchase\'" (the others are skipped)')


class Source(WhereFiltered, Component):
    """Base class. A source yields batches in offset order per partition.

    Sources with a fixed set of partitions list them in `partitions()`; sources whose partitions
    come and go (Kafka) announce them through `context.partitions` (rtstream.runtime.partitions) instead.
    """

    Config: ClassVar[type[SourceConfig]]
    has_source_time: ClassVar[bool] = True
    splits_by_group: ClassVar[bool] = False  # several workers share it: by a consumer group, or a static share (Kafka)


    @property
    def finite(self) -> bool:
        return False

    def partitions(self) -> list[Hashable] | None:
        return [0]

    def batches(self) -> AsyncIterator[Batch]:
        raise NotImplementedError

    async def commit(self, positions: dict[Hashable, int], marks: dict[Hashable, Mark] | None = None) -> None:
        """Persist positions that the commit rule says are safe (resume points), with their marks."""

    async def transaction_offsets(self, commit: SourceCommit) -> tuple[str, dict[Any, Any]] | None:
        """(consumer group, offsets) that a Kafka producer transaction can commit for `commit`; None
        for sources whose positions do not live in a consumer group. Anything the source must keep
        before the transaction can land is kept before this returns."""
        return None

    async def committed_in_transaction(self, commit: SourceCommit) -> None:
        """A sink's transaction committed `commit` for this source."""

    def checkpoint_scope(self) -> str:
        """What a checkpoint of this source is valid for: its positions mean nothing elsewhere."""
        return self.name

    def resume_at(self, positions: dict[Hashable, int]) -> set[Hashable]:
        """Read these partitions from a checkpoint's positions instead of the committed ones (called
        after start, before batches). Returns the partitions it will; the rest replay from the commit."""
        return set()

    def resume_marks(self) -> dict[Hashable, Mark]:
        """The marks saved with the positions this source resumes from (fixed-partition sources)."""
        return {}

    def resumed(self) -> dict[Hashable, int]:
        """Fixed-partition sources: the position each partition reads on from, when it goes on with
        what an earlier run of this source read (not a finite run that starts over, not a new file).
        A mark journaled before a commit round applies only to these (rtstream.runtime.written_marks)."""
        return {}

    async def keepalive(self) -> None:
        """Called while the pipeline is full and the source must wait: stay a live member of whatever
        it belongs to (a Kafka group) without taking more input."""

    def lag(self) -> dict[tuple[str, int], int]:
        """Records behind the end, per (topic, partition), for sources that can tell (Kafka)."""
        return {}

    def pending_bytes(self) -> int | None:
        """Bytes taken in and not yet written by every sink, for sources that spool their input."""
        return None

    def not_ready(self) -> str | None:
        """Why this source cannot take input now (for /readyz), or None when it can."""
        return None

