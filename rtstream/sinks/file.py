"""One JSON-lines file per window, named after the window start, replaced atomically.

Rows are upserted by the output key: a replayed window rewrites the same file with the same rows,
and a window flushed in two parts (a partition that moved between replicas) keeps both parts.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import orjson

from rtstream.core.record import Window
from rtstream.core.registry import register
from rtstream.sinks.base import Sink, SinkConfig


class FileSinkConfig(SinkConfig):
    path: str
    fsync: bool = True


@register("sink", "file")
class FileSink(Sink):
    Config = FileSinkConfig

    async def start(self) -> None:
        self.dir = Path(self.config.path)
        self.dir.mkdir(parents=True, exist_ok=True)

    def file_for(self, window: Window) -> Path:
        name = window.start_iso.replace(":", "-")
        if window.key is not None:
            name += f".{window.key}"
        return self.dir / f"{name}.jsonl"

    async def write(self, window: Window, rows: list[dict[str, Any]]) -> None:
        await asyncio.to_thread(self._write, self.file_for(window), rows)

    def _write(self, target: Path, rows: list[dict[str, Any]]) -> None:
        keys = self.context.key_fields
        if keys and target.exists():
            merged = {_key(r, keys): r for r in _read(target)}
            merged.update({_key(r, keys): r for r in rows})
            rows = list(merged.values())
        tmp = target.with_name(f".{target.name}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(b"".join(orjson.dumps(r, default=str) + b"\n" for r in rows))
            fh.flush()
            if self.config.fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
        if self.config.fsync:
            fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _key(row: dict[str, Any], keys: list[str]) -> bytes:
    return orjson.dumps([row.get(k) for k in keys], default=str)


def _read(path: Path) -> list[dict[str, Any]]:
    with open(path, "rb") as fh:
        return [orjson.loads(line) for line in fh if line.strip()]
