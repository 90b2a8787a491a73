"""A durable, replayable spool on local disk for sources that have no replay of their own (HTTP).

Records are appended to segment files named by the absolute byte offset they start at, as Kafka's
log segments are, each line `<arrival epoch ms> <json>`. A record's position is its absolute byte
offset, so the commit rule works on a spool exactly as on a Kafka partition; a segment is deleted
only once the committed position has passed all of it. The arrival time is the record's source
time, so `time = "source"` windows replay the same.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import orjson

from rtstream.model.batch import Batch
from rtstream.model.record import Record
from rtstream.support.line_files import append_whole, drop_torn_tail

MARKER = b"#"  # a line holding the source's own state (a poll cursor), not a record


class SpoolFull(Exception):
    """More bytes are waiting than `max_bytes`: callers answer 503 and try later."""


class Spool:
    def __init__(self, directory: Path, *, segment_bytes: int = 16 << 20, max_bytes: int = 1 << 30,
                 fsync: Literal["always", "interval"] = "always", fsync_interval: float = 1.0):
        self.dir = directory
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self._appended = asyncio.Event()
        self._lock = asyncio.Lock()
        self._last_sync = 0.0
        self._fh: object | None = None

    # --- layout -----------------------------------------------------------------------------
    def _segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.dir.glob("*.log"))

    def _path(self, base: int) -> Path:
        return self.dir / f"{base:020d}.log"

    def open(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        segs = self._segments()
        if not segs:
            segs = [0]
            self._path(0).touch()
        self._active = segs[-1]
        drop_torn_tail(self._path(self._active))  # a crash (or a disk that filled) mid-append
        self._fh = open(self._path(self._active), "ab", buffering=0)  # unbuffered: nothing left to flush later
        self.end = self._active + os.path.getsize(self._path(self._active))
        self._last_marker = self.last_marker()
        committed = self.dir / "committed"
        doc = orjson.loads(committed.read_bytes()) if committed.exists() else {}
        self.committed = int(doc.get("position", segs[0]))
        self.read_from = self.committed  # later, where a restored checkpoint says
        self.mark: tuple[int, int] | None = tuple(doc["mark"]) if doc.get("mark") else None  # type: ignore[assignment]

    @property
    def pending_bytes(self) -> int:
        return self.end - self.committed

    # --- writing ----------------------------------------------------------------------------
    async def append(self, payloads: list[bytes], arrival_ms: int | None = None, marker: bytes | None = None) -> int:
        """Append records (JSON bytes each) and, optionally, a marker line, durably per the fsync policy.

        All or nothing as far as readers can tell: the lines are written with one write call.
        Raises SpoolFull when too much is waiting already.
        """
        if self.pending_bytes >= self.max_bytes:
            raise SpoolFull(f"spool holds {self.pending_bytes} bytes not yet written to every sink")
        ts = b"%d " % (arrival_ms if arrival_ms is not None else int(time.time() * 1000))
        blob = b"".join(ts + p + b"\n" for p in payloads)
        if marker is not None:
            blob += MARKER + b" " + marker + b"\n"
        async with self._lock:
            await asyncio.to_thread(self._write, blob, marker)
        self._appended.set()
        return len(payloads)

    def _write(self, blob: bytes, marker: bytes | None = None) -> None:
        """All or nothing: a full disk (ENOSPC, EDQUOT) may take part of the blob, which the caller is
        about to refuse; it is taken back (or, after a crash, dropped by the next open)."""
        fh = self._fh
        assert fh is not None
        fd = fh.fileno()  # type: ignore[attr-defined]
        now = time.monotonic()
        sync = self.fsync == "always" or now - self._last_sync >= self.fsync_interval
        append_whole(fd, blob, size=self.end - self._active, fsync=sync)
        if sync:
            self._last_sync = now
        self.end += len(blob)
        if marker is not None:
            self._last_marker = marker
        if self.end - self._active >= self.segment_bytes:
            try:
                self._roll()
            except OSError:
                pass  # the records are stored: a new segment is tried again at the next append

    def _roll(self) -> None:
        """Start a new segment. It opens with the newest marker, so the source's state (a poll cursor)
        outlives the deletion of the segment that held it."""
        fh = self._fh
        os.fsync(fh.fileno())  # type: ignore[union-attr]
        new = open(self._path(self.end), "ab", buffering=0)
        if self._last_marker is not None:
            new.write(MARKER + b" " + self._last_marker + b"\n")
            os.fsync(new.fileno())
        fh.close()  # type: ignore[union-attr]
        self._active, self._fh = self.end, new
        self.end += new.tell()
        self._sync_dir()

    def _sync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # --- reading ----------------------------------------------------------------------------
    async def read(self, source: str, batch_size: int = 5000, follow: bool = True) -> AsyncIterator[Batch]:
        """Batches from the committed position on; waits for appends when it reaches the end."""
        pos = max(self.committed, self.read_from)
        pending = b""
        while True:
            self._appended.clear()
            chunk = await asyncio.to_thread(self._read_at, pos + len(pending), 1 << 20)
            if not chunk:
                if not follow:
                    return
                await self._appended.wait()
                continue
            pending += chunk
            while True:
                records, consumed = _parse(pending, pos, batch_size)
                if not consumed:
                    break
                pending = pending[consumed:]
                pos += consumed
                yield Batch(source, 0, records, pos)

    def _read_at(self, pos: int, size: int) -> bytes:
        segs = self._segments()
        base = max((s for s in segs if s <= pos), default=None)
        if base is None:
            return b""
        with open(self._path(base), "rb") as fh:
            fh.seek(pos - base)
            return fh.read(size)

    def last_marker(self) -> bytes | None:
        """The newest marker line in the active segment (state written with the records it covers)."""
        path = self._path(self._active)
        found = None
        with open(path, "rb") as fh:
            for line in fh:
                if line.startswith(MARKER + b" ") and line.endswith(b"\n"):
                    found = line[2:-1]
        return found

    # --- committing -------------------------------------------------------------------------
    def commit(self, position: int, mark: tuple[int, int] | None = None) -> None:
        """Everything before `position` is written: remember it (and its mark, see
        rtstream.model.positions.Mark) and delete segments wholly before it."""
        if position <= self.committed and mark == self.mark:
            return
        self.committed, self.mark = max(position, self.committed), mark
        tmp = self.dir / "committed.tmp"
        tmp.write_bytes(orjson.dumps({"position": self.committed, "mark": list(mark) if mark else None}))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.dir / "committed")
        segs = self._segments()
        for base, nxt in zip(segs, segs[1:], strict=False):
            if nxt <= position:
                self._path(base).unlink(missing_ok=True)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()  # type: ignore[attr-defined]
            self._fh = None


def _parse(buf: bytes, base: int, limit: int) -> tuple[list[Record], int]:
    records: list[Record] = []
    start, n = 0, len(buf)
    while start < n and len(records) < limit:
        nl = buf.find(b"\n", start)
        if nl < 0:
            break
        if buf[start:start + 1] != MARKER:
            sp = buf.find(b" ", start, nl)
            records.append(Record(buf[sp + 1:nl], base + start, int(buf[start:sp])))
        start = nl + 1
    return records, start


