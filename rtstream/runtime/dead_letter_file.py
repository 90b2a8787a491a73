"""The dead-letter file: letters appended as JSON lines, on disk before a write returns."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from rtstream.engine.dead_letter import LOG_DETAIL_CHARS, DeadLetter, bounded_text, partition_label
from rtstream.model.window import iso_utc
from rtstream.support.line_files import append_whole, drop_torn_tail

log = logging.getLogger("rtstream.dead_letter")


class DeadLetterFile:
    """Appends dead letters as JSON lines; a write returns only once they are on disk."""

    def __init__(self, path: Path):
        self.path = path
        self.count = 0
        self.by_reason: dict[tuple[str | None, str], int] = {}  # (component, reason) -> records
        self._fh: Any = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        drop_torn_tail(self.path)
        self._fh = open(self.path, "ab", buffering=0)  # unbuffered: nothing half-written is left to flush later

    async def write(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        blob = b"".join(d.to_json() + b"\n" for d in letters)
        await asyncio.to_thread(self._append, blob)
        self.count += len(letters)
        reasons: dict[str, int] = {}
        for d in letters:
            reasons[d.reason] = reasons.get(d.reason, 0) + 1
            key = (d.stage or d.source, d.reason)
            self.by_reason[key] = self.by_reason.get(key, 0) + 1
        first = letters[0]
        log.warning("%d record(s) dead-lettered %s; first: %s at %s: %s", len(letters), reasons,
                    bounded_text(first.reason, 100), _where(first), bounded_text(first.detail, LOG_DETAIL_CHARS))

    def _append(self, blob: bytes) -> None:
        fd = self._fh.fileno()
        try:
            append_whole(fd, blob, size=os.fstat(fd).st_size)
        except OSError as exc:  # a full or read-only disk: stop, naming the file, rather than lose them
            raise OSError(exc.errno, f"cannot write dead letters to {self.path}: {exc.strerror}") from exc

    async def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _where(letter: DeadLetter) -> str:
    """A letter's place: its record's position, else (a row a window made, refused by a sink) its
    component and window."""
    if letter.source is not None:
        return (f"{bounded_text(letter.source, 100)}/{bounded_text(partition_label(letter.partition), 100)}"
                f"@{bounded_text(letter.offset, 40)}")
    window = f" window {iso_utc(letter.window[0])}" if letter.window is not None else ""
    return f"{bounded_text(letter.stage or 'a row', 100)}{window}"
