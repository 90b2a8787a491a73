"""What the generator and nexmark sources share: records made on the source's own clock.

Record i's time is `start + i / rate`, so a run is a function of its settings and a restart that
resumes at the committed position rebuilds the same windows. An endless run keeps its start and its
committed position, with the commit's mark, in the state dir (a finite run starts over each time).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Hashable
from typing import Any

from rtstream.model.errors import DecodeError
from rtstream.model.positions import Mark
from rtstream.sources.base import Source
from rtstream.sources.file_positions import PositionFile
from rtstream.windows.clock import epoch_ms

FIXED_START = "2026-01-01T00:00:00Z"  # a run that is not realtime and names no start begins here


def checked_start(value: Any) -> Any:
    """A config's `start`: a time, or a ValueError its one-line refusal is made of."""
    if value is not None:
        try:
            epoch_ms(value)
        except DecodeError as exc:
            raise ValueError(f"{exc}; e.g. \"2026-01-01T00:00:00Z\" or epoch ms") from None
    return value


class ClockedSource(Source):
    """A source whose config has `start`, `rate` and `realtime`, and whose `finite` says whether the run ends."""

    start_ms: int
    position: int

    def resume(self) -> None:
        """Where this run begins: its start time and first position (and the mark its commit carried)."""
        cfg = self.config
        self._positions = PositionFile(self.context.state_dir, self.name)
        saved = self._positions.load() if not self.finite else {}
        if cfg.start is not None:
            self.start_ms = epoch_ms(cfg.start)
        elif "start_ms" in saved:
            self.start_ms = int(saved["start_ms"])
        elif cfg.realtime:
            self.start_ms = int(time.time() * 1000)
        else:
            self.start_ms = epoch_ms(FIXED_START)
        self.position = int(saved.get("position", 0))
        mark = saved.get("mark")
        self._mark = Mark(int(mark[0]), int(mark[1])) if mark else None
        span = self.context.extra.get("backfill_range") if self.finite else None
        if span is not None:  # a backfill (rtstream.run.backfill): begin at the range's first record
            self.position = max(0, math.floor((span[0] - self.start_ms) * cfg.rate / 1000))
        self._committed = (self.position, self._mark)
        if not self.finite:
            self._positions.save(self._doc(self.position, self._mark))

    def _doc(self, position: int, mark: Mark | None) -> dict[str, Any]:
        return {"start_ms": self.start_ms, "position": position, "mark": list(mark) if mark else None}

    async def commit(self, positions: dict[Hashable, int], marks: dict[Hashable, Mark] | None = None) -> None:
        # Time rises with the position, so no record before the commit is out of order. The mark goes
        # with the position: a hopping window written before a restart can hold records at or past the
        # position, and on replay the mark tells them apart (they are not counted again into a window
        # that would then be written with only its replayed part).
        pos, mark = positions.get(0), (marks or {}).get(0)
        if self.finite or pos is None or (pos, mark) == self._committed:
            return
        await asyncio.to_thread(self._positions.save, self._doc(pos, mark))
        self._committed = (pos, mark)

    def resume_marks(self) -> dict[Hashable, Mark]:
        return {0: self._mark} if self._mark is not None else {}

    def resumed(self) -> dict[Hashable, int]:
        return {} if self.finite else {0: self.position}  # a finite run starts over
