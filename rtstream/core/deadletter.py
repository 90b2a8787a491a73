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


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line that a crash or a full disk left half-written."""
    try:
        with open(path, "rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return
            fh.seek(max(0, size - 65536))
            tail = fh.read()
            if tail.endswith(b"\n"):
                return
            cut = tail.rfind(b"\n")
            fh.truncate(size - len(tail) + cut + 1 if cut >= 0 else (0 if size <= 65536 else size))
    except FileNotFoundError:
        pass


class DeadLetterFile:
    """Appends dead letters as JSON lines; a write returns only once they are on disk."""

    def __init__(self, path: Path):
        self.path = path
        self.count = 0
        self.by_reason: dict[tuple[str | None, str], int] = {}  # (component, reason) -> records
        self._fh: Any = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(self.path)
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
        log.warning("%d record(s) dead-lettered %s; first: %s at %s/%s@%s: %s", len(letters), reasons,
                    first.reason, first.source, _partition_label(first.partition), first.offset, first.detail)

    def _append(self, blob: bytes) -> None:
        fd = self._fh.fileno()
        size = os.fstat(fd).st_size
        try:
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:  # a full or read-only disk: stop, naming the file, rather than lose them
            try:
                os.ftruncate(fd, size)  # leave no torn line behind
            except OSError:
                pass  # the next start drops it
            raise OSError(exc.errno, f"cannot write dead letters to {self.path}: {exc.strerror}") from exc

    async def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
