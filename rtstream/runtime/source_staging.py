"""Per-record stages of one source only, before the sources meet (`a >> clean >> m >> out; b >> m`):
each batch goes through its source's own stages, then the flow's per-record stages, per batch
(rtstream.runtime.awaiting_stages), and the fold gets it staged."""

from __future__ import annotations

from rtstream.engine.dead_letter import DeadLetter
from rtstream.model.batch import Batch
from rtstream.runtime.awaiting_stages import RecordStaging


class SourceStaging:
    """Duck-types `RecordStaging` for the window loop: one staging per source."""

    def __init__(self, by_source: dict[str, RecordStaging]):
        self.by_source = by_source
        self._failing: dict[str, str] = {}

    async def run(self, batch: Batch) -> tuple[Batch, list[DeadLetter]]:
        return await self.by_source[batch.source].run(batch)

    @property
    def failing(self) -> dict[str, str]:
        return self._failing

    @failing.setter
    def failing(self, shared: dict[str, str]) -> None:  # a halted lookup shows as the flusher's halted sinks do
        self._failing = shared
        for staging in self.by_source.values():
            staging.failing = shared

    @property
    def filtered_out(self) -> int:
        return sum(s.filtered_out for s in self.by_source.values())
