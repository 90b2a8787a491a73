"""The base of sources whose input is first made durable in a local spool (HTTP ingest, HTTP poll,
python): the pipeline reads, commits and replays the spool, whatever fills it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable
from typing import Any, Literal

from pydantic import Field

from rtstream.core.commit import Mark
from rtstream.core.record import Batch
from rtstream.sources.base import Source, SourceConfig
from rtstream.sources.spool import Spool


class SpooledConfig(SourceConfig):
    max_spool: int = Field(default=1 << 30, ge=1024, description="bytes waiting for the sinks before refusing more")
    segment_bytes: int = Field(default=16 << 20, ge=1024)
    fsync: Literal["always", "interval"] = "always"
    batch_size: int = Field(default=5000, ge=1)


class SpooledSource(Source):
    spool: Spool

    def open_spool(self) -> None:
        c: Any = self.config
        self.spool = Spool(self.context.state_dir / "spool" / self.name, segment_bytes=c.segment_bytes,
                           max_bytes=c.max_spool, fsync=c.fsync)
        self.spool.open()

    async def batches(self) -> AsyncIterator[Batch]:
        async for batch in self.spool.read(self.name, self.config.batch_size):
            yield batch

    async def commit(self, positions: dict[Hashable, int], marks: dict[Hashable, Mark] | None = None) -> None:
        pos = positions.get(0)
        if pos is not None:
            self.spool.commit(pos, (marks or {}).get(0))

    def resume_marks(self) -> dict[Hashable, Mark]:
        return {0: self.spool.mark} if self.spool.mark else {}

    async def close(self) -> None:
        if hasattr(self, "spool"):
            self.spool.close()
