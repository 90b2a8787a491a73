"""Dead letters: every record that could not be used, with why, where from, and which stage."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("rtstream.dead_letter")
_EXCERPT = 2048


@dataclass(slots=True)
class DeadLetter:
    reason: str  # decode | no_time | late | invalid | stage_error | window_full | sink_rejected
    detail: str
    source: str | None = None
    partition: Hashable = None
    offset: int | None = None
    stage: str | None = None
    window: tuple[int, int] | None = None
    value: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "reason": self.reason,
            "detail": self.detail,
            "source": self.source,
            "partition": _partition_label(self.partition),
            "offset": self.offset,
            "stage": self.stage,
            "at": round(time.time(), 3),
        }
        if self.window is not None:
            from rtstream.core.record import iso_utc

            doc["window_start"], doc["window_end"] = iso_utc(self.window[0]), iso_utc(self.window[1])
        doc["value"] = _excerpt(self.value)
        doc.update(self.extra)
        return orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS, default=str)


def _partition_label(p: Hashable) -> Any:
    if p is None or isinstance(p, (int, str)):
        return p
    topic, part = getattr(p, "topic", None), getattr(p, "partition", None)
    return f"{topic}:{part}" if topic is not None else str(p)


def _excerpt(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        text = raw[:_EXCERPT].decode("utf-8", errors="backslashreplace")
        return text + ("…" if len(raw) > _EXCERPT else "")
    if isinstance(value, str) and len(value) > _EXCERPT:
        return value[:_EXCERPT] + "…"
    return value


class DeadLetterFile:
    """Appends dead letters as JSON lines; a write returns only once they are on disk."""

    def __init__(self, path: Path):
        self.path = path
        self.count = 0
        self.by_reason: dict[tuple[str | None, str], int] = {}  # (component, reason) -> records
        self._fh: Any = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "ab")

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
        log.warning("%d record(s) dead-lettered %s; first: %s at %s/%s@%s: %s", len(letters), reasons,
                    first.reason, first.source, _partition_label(first.partition), first.offset, first.detail)

    def _append(self, blob: bytes) -> None:
        self._fh.write(blob)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    async def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
