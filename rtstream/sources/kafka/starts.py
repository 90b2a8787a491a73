"""Where a newly assigned Kafka partition starts reading, decided from the broker's answers.

The decision is made before any record of the partition is accepted, from what the group
committed, `start`, `start_at` (and, after this, a checkpoint: rtstream.runtime.partitions), never from
`consumer.position()`: a fetch running beside the assignment may already have moved the position
past records nobody has accepted. Marks travel as commit metadata; this module reads and writes them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from rtstream.model.positions import Mark, SourceCommit
from rtstream.sources.file_positions import PositionFile
from rtstream.sources.kafka.host_marks import saved_mark
from rtstream.windows.clock import epoch_ms

log = logging.getLogger("rtstream.source.kafka")
MARK_PREFIX = "rtstream/1 "


def mark_metadata(mark: Mark | None) -> str:
    """A mark as the metadata of the committed offset it goes with."""
    return f"{MARK_PREFIX}{mark[0]} {mark[1]}" if mark else ""


def offsets_to_commit(commit: SourceCommit, owned: set[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata]:
    """`commit` for the partitions this consumer owns, each offset with its mark as metadata."""
    return {tp: OffsetAndMetadata(off, mark_metadata(commit.marks.get(tp)))
            for tp, off in commit.positions.items() if tp in owned}


@dataclass(frozen=True)
class DecidedStarts:
    starts: dict[TopicPartition, int]
    marks: dict[Hashable, Mark]  # committed with those starts
    resumable: set[TopicPartition]  # starts taken from the commit: a newer checkpoint may replace them


class StartPositions:
    def __init__(self, consumer: AIOKafkaConsumer, config: Any, source: str, local_marks: PositionFile):
        self.consumer = consumer
        self.config = config
        self.source = source
        self.local_marks = local_marks

    async def decide(self, assigned: list[TopicPartition], fresh: list[TopicPartition]) -> DecidedStarts:
        """`fresh`: the partitions this process has not read before (an explicit `start` applies to them)."""
        committed = await self._committed(assigned)
        explicit = self.config.start_at is not None or self.config.start != "committed"
        chosen = fresh if explicit else []
        starts = await self._explicit(chosen)
        no_commit = [tp for tp in assigned if tp not in starts and tp not in committed]
        if no_commit:
            starts.update(await self._without_commit(no_commit))
        for tp in assigned:
            if tp not in starts:
                starts[tp] = committed[tp].offset
        marks = await self._marks(committed)
        return DecidedStarts(starts, marks, {tp for tp in assigned if tp not in chosen})

    async def _committed(self, partitions: list[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata]:
        """The group's committed offsets, with their metadata (our marks), in one request."""
        # aiokafka's public committed() drops the metadata that carries the marks
        found: dict[TopicPartition, OffsetAndMetadata] = \
            await self.consumer._coordinator.fetch_committed_offsets(partitions)
        return {tp: meta for tp, meta in found.items() if meta.offset >= 0}

    async def _explicit(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """`start_at`, `start = "earliest"` or `"latest"`."""
        if not partitions:
            return {}
        if self.config.start_at is not None:
            return await self._at_time(partitions, epoch_ms(self.config.start_at))
        if self.config.start == "latest":
            return dict(await self.consumer.end_offsets(partitions))
        return dict(await self.consumer.beginning_offsets(partitions))

    async def _without_commit(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """A partition with no commit starts at its end for `start = "latest"`, else at its beginning."""
        if self.config.start == "latest":
            return dict(await self.consumer.end_offsets(partitions))
        return dict(await self.consumer.beginning_offsets(partitions))

    async def _at_time(self, partitions: list[TopicPartition], ms: int) -> dict[TopicPartition, int]:
        try:
            found = await self.consumer.offsets_for_times({tp: ms for tp in partitions})
        except Exception as exc:  # noqa: BLE001 - some brokers cannot answer: scan from the start instead
            log.warning("%s: offsets_for_times failed (%s); reading from the beginning", self.source, exc)
            found = {}
        out = {tp: hit.offset for tp, hit in found.items() if hit is not None}
        missing = [tp for tp in partitions if tp not in out]
        if missing:  # no record at or after that time (or no answer): the beginning
            out.update(await self.consumer.beginning_offsets(missing))
        return out

    async def _marks(self, committed: dict[TopicPartition, OffsetAndMetadata]) -> dict[Hashable, Mark]:
        """The marks the last owner committed with its offsets (see rtstream.model.positions.Mark)."""
        marks: dict[Hashable, Mark] = {}
        local = await asyncio.to_thread(self.local_marks.load) if committed else {}
        for tp, meta in committed.items():
            text = meta.metadata or ""
            if text.startswith(MARK_PREFIX):
                try:
                    written, nxt = text[len(MARK_PREFIX):].split()
                    marks[tp] = Mark(int(written), int(nxt))
                    continue
                except ValueError:
                    pass
            # Some Kafka-compatible brokers drop commit metadata: use this host's own copy, but only
            # if it was saved with the very offset the group has committed.
            if (saved := saved_mark(local, f"{tp.topic}:{tp.partition}", meta.offset)) is not None:
                marks[tp] = saved
        return marks
