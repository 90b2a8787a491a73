"""JSON lines from a file: read to the end (a finite run, a backfill) or follow it like `tail -F`.

Positions are byte offsets. In follow mode the committed offset and the file's identity are kept
under state_dir, so a restart resumes where the sinks had got to; a rotated or truncated file is
read again from its start.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Hashable
from typing import Any, BinaryIO

from pydantic import Field

from rtstream.model.batch import Batch
from rtstream.model.durations import Duration
from rtstream.model.positions import Mark
from rtstream.model.record import Record
from rtstream.model.registry import register
from rtstream.sources.base import Source, SourceConfig
from rtstream.sources.file_positions import PositionFile

_READ = 1 << 20


class FileSourceConfig(SourceConfig):
    path: str = Field(description="a JSON-lines file (relative to the config file)")
    follow: bool = Field(default=False, description="keep reading as lines are appended (like tail -f)")
    poll_interval: Duration = Field(default=0.25, description="follow: how often to look for new lines")
    batch_size: int = Field(default=5000, ge=1, description="lines per batch at most")


@register("source", "file")
class FileSource(Source):
    """Lines that are blank are skipped; a last line without a newline waits for it when following."""

    Config = FileSourceConfig
    has_source_time = False

    @property
    def finite(self) -> bool:
        return not self.config.follow

    async def start(self) -> None:
        self._positions = PositionFile(self.context.state_dir, self.name)
        saved = self._positions.load() if self.config.follow else {}
        self._resume = saved
        self._committed: tuple[int, Mark | None] | None = None
        self._identity: tuple[int, int] | None = None
        if not self.config.follow and not os.path.exists(self.config.path):
            raise FileNotFoundError(f"{self.config.path}: no such file")

    async def batches(self) -> AsyncIterator[Batch]:
        fh: BinaryIO | None = None
        pos = 0
        pending = b""
        try:
            while True:
                if fh is None:
                    fh, pos = await self._open()
                    pending = b""
                    if fh is None:
                        await asyncio.sleep(self.config.poll_interval)
                        continue
                chunk = await asyncio.to_thread(fh.read, _READ)
                pending += chunk
                while True:
                    records, consumed = _split(pending, pos, self.config.batch_size)
                    if not consumed:
                        break
                    pending = pending[consumed:]
                    pos += consumed
                    yield Batch(self.name, 0, records, pos)
                if chunk:
                    continue
                if not self.config.follow:
                    if pending.strip():
                        yield Batch(self.name, 0, [Record(pending, pos)], pos + len(pending))
                    return
                if await self._replaced(fh, pos + len(pending)):
                    fh.close()
                    fh = None
                    self._resume = {}
                    continue
                await asyncio.sleep(self.config.poll_interval)
        finally:
            if fh is not None:
                fh.close()

    async def _open(self) -> tuple[BinaryIO | None, int]:
        try:
            fh = open(self.config.path, "rb")
        except FileNotFoundError:
            return None, 0
        st = os.fstat(fh.fileno())
        self._identity = (st.st_dev, st.st_ino)
        pos = 0
        if self._resume.get("inode") == st.st_ino and self._resume.get("position", 0) <= st.st_size:
            pos = int(self._resume["position"])
            fh.seek(pos)
        return fh, pos

    async def _replaced(self, fh: BinaryIO, pos: int) -> bool:
        try:
            st = os.stat(self.config.path)
        except FileNotFoundError:
            return False  # rotated away; wait for the new file
        return (st.st_dev, st.st_ino) != self._identity or st.st_size < pos

    async def commit(self, positions: dict[Hashable, int], marks: dict[Hashable, Mark] | None = None) -> None:
        pos, mark = positions.get(0), (marks or {}).get(0)
        if not self.config.follow or pos is None or (pos, mark) == self._committed or self._identity is None:
            return
        doc: dict[str, Any] = {"inode": self._identity[1], "position": pos, "mark": list(mark) if mark else None}
        await asyncio.to_thread(self._positions.save, doc)
        self._committed = (pos, mark)

    def resume_at(self, positions: dict[Hashable, int]) -> set[Hashable]:
        pos = positions.get(0)
        if not self.config.follow or pos is None or "inode" not in self._resume or pos < self._resume["position"]:
            return set()  # a checkpoint is only good on top of this file's commit
        self._resume = {**self._resume, "position": pos}
        return {0}

    def resumed(self) -> dict[Hashable, int]:
        # a followed file goes on from its commit (or from 0 when none landed yet); whether the file
        # is still the same one is told only once it is opened, as for resume_at
        return {0: int(self._resume.get("position", 0))} if self.config.follow else {}

    def resume_marks(self) -> dict[Hashable, Mark]:
        mark = self._resume.get("mark")
        return {0: Mark(int(mark[0]), int(mark[1]))} if mark else {}

    def describe(self) -> str:
        return f"file: {self.config.path}{' (follow)' if self.config.follow else ''}"


def _split(buf: bytes, base: int, limit: int) -> tuple[list[Record], int]:
    """Complete lines of `buf` (up to `limit`, blank ones skipped) as records at their byte offsets;
    bytes consumed. One C-level split (maxsplit: the rest stays one piece) instead of a find and a
    slice per line, and isspace, not strip (which copies each line)."""
    if limit <= 0:
        return [], 0
    lines = buf.split(b"\n", limit)
    lines.pop()  # what follows the last newline taken: a line not complete yet, or the lines beyond `limit`
    records: list[Record] = []
    append = records.append
    pos = base
    for line in lines:
        if line and not line.isspace():
            append(Record(line, pos))
        pos += len(line) + 1
    return records, pos - base
