"""One JSON-lines file per window, named after the window start, replaced atomically (or, with
`mode = "append"`, every window appended to one file per day).

Rows are upserted by the output key: a replayed window rewrites the same file with the same rows,
and a window flushed in two parts (a partition that moved between replicas) keeps both parts.

File names. A tumbling or hopping window is `<start>.jsonl` (`2026-11-24T12-05-00Z.jsonl`). A
session window adds its key: `<start>.<key>.jsonl` when the key is a string of at most 64 of the
characters `A-Z a-z 0-9 - _ . @ + =`; any other key (a `/`, `..`, a NUL, other unicode, a longer
key, or a key that is not a string) keeps a readable prefix of those characters (others become `_`,
at most 64) followed by `~` and 20 hex digits of the SHA-256 of the exact key:
`2026-11-24T12-05-00Z.a_b~3f1c....jsonl` for `a/b`. So a name is never a path (it has no `/` and
starts with the window start), it stays under 120 bytes, and two different keys never share a
file: a name without `~` spells its key exactly, one with `~` carries the hash of it (and of its
type, so the key `5` and the key `"5"` differ). A count window adds its first record after its key,
`<start>.<key>.<source>-<partition>@<offset>.jsonl`: a key's windows may share their earliest time.

`mode = "append"` writes no file per window: each window's rows are appended to the file of its
start's UTC day (`2026-11-24.jsonl`), in window order. For per-key windows (sessions, count windows)
that is a few files instead of one per window and key (a million bids in sessions of 10 s made 20,000
files, whose creation cost more CPU than the whole query). A replayed window appends its rows
again: at least once, like a table sink's `mode = "insert"`; readers keep the last row per
(window_start, key), or use the default `"replace"` for exactly one copy. Appends are whole lines
or nothing (rtstream.support.line_files, as the dead letters and the spool): a full disk's part of a
write is taken back before the retry, and a line a crash tore is cut before the file's next append.

Rows that cannot be written as JSON (an int beyond 64 bits, nesting deeper than orjson's 254
levels, a non-string dict key) are refused one by one (`RowsRejected`, to the dead letters) and the
rest of the window is written; NaN and infinities are written as `null`. A failing disk (full,
read-only) fails the write and the policy retries it.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import hashlib
import os
import re
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import Field

from rtstream.model.errors import RowsRejected
from rtstream.model.registry import register
from rtstream.model.window import Window
from rtstream.sinks.base import Sink, SinkConfig
from rtstream.sinks.rows import Rejected, encode_row
from rtstream.support.line_files import append_whole, drop_torn_tail

KEY_CHARS = 64  # of a key kept readable in a file name
_PLAIN = re.compile(r"[A-Za-z0-9._@+=-]{1,64}")
_OTHER = re.compile(r"[^A-Za-z0-9._@+=-]")


class FileSinkConfig(SinkConfig):
    path: str = Field(description="a folder: one JSON-lines file per window")
    fsync: bool = Field(default=True, description="each window is on disk before it counts as written")
    mode: Literal["replace", "append"] = Field(default="replace", description=(
        '"replace": one file per window, a replayed window rewrites it; "append": each window\'s rows appended '
        "to one file per UTC day of its start (YYYY-MM-DD.jsonl), a replayed window appends again"))


def key_name(key: Any) -> str:
    """The file-name part for a session key: the key itself when it is plain, else a readable
    prefix plus a hash of the exact key (see the module docstring).

    >>> key_name("u42"), key_name("a/b")[:4], len(key_name("x" * 5000))
    ('u42', 'a_b~', 85)
    """
    if isinstance(key, str) and _PLAIN.fullmatch(key):
        return key
    if isinstance(key, str):
        exact = b"str:" + key.encode("utf-8", errors="surrogatepass")
        readable = key[:KEY_CHARS]
    else:
        text = repr(key)
        exact = f"{type(key).__module__}.{type(key).__qualname__}:{text}".encode("utf-8", errors="surrogatepass")
        readable = text[:KEY_CHARS]
    return f"{_OTHER.sub('_', readable)}~{hashlib.sha256(exact).hexdigest()[:20]}"


def window_part(ident: str) -> str:
    """A count window's identity (`source/partition@offset`) as a file-name part: `source-partition@offset`.

    >>> window_part("tail/0@1234")
    'tail-0@1234'
    """
    return key_name(ident.replace("/", "-"))


@register("sink", "file")
class FileSink(Sink):
    Config = FileSinkConfig

    async def start(self) -> None:
        self.dir = Path(self.config.path)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._checked: set[Path] = set()  # day files whose torn last line (if any) this process has cut

    def file_for(self, window: Window) -> Path:
        if self.config.mode == "append":
            return self.dir / f"{window.start_iso[:10]}.jsonl"
        name = window.start_iso.replace(":", "-")
        if window.key is not None:
            name += f".{key_name(window.key)}"
        if window.ident is not None:  # a count window: others of this key may share its start
            name += f".{window_part(window.ident)}"
        return self.dir / f"{name}.jsonl"

    async def write(self, window: Window, rows: list[dict[str, Any]]) -> None:
        rejected = await asyncio.to_thread(self._write, self.file_for(window), rows)
        if rejected:
            raise RowsRejected(self.name, rejected)

    async def write_windows(self, items: list[tuple[Window, list[dict[str, Any]]]]) -> tuple[int, BaseException | None]:
        """Several windows in order, each exactly as `write` writes it, in one hand-off to a thread,
        stopping at the first that fails or refuses rows: how many were written before it, and what it
        raised (rtstream.runtime.flush_group). A window with refused rows was written except them."""
        targets = [(self.file_for(window), rows) for window, rows in items]

        def run() -> tuple[int, BaseException | None]:
            for i, (target, rows) in enumerate(targets):
                try:
                    rejected = self._write(target, rows)
                except Exception as exc:  # noqa: BLE001 - the flusher's policy retries this window alone
                    return i, exc
                if rejected:
                    return i, RowsRejected(self.name, rejected)
            return len(targets), None

        return await asyncio.to_thread(run)

    def _write(self, target: Path, rows: list[dict[str, Any]]) -> Rejected:
        rejected: Rejected = []
        try:  # the common case, every row encodable: one C-level pass, each line ending in its newline
            lines, good = list(map(_line, rows)), rows
        except (TypeError, orjson.JSONEncodeError):
            lines, good = [], []
            for row in rows:
                line = encode_row(row)
                if isinstance(line, str):
                    rejected.append(([row], line))
                else:
                    lines.append(line + b"\n")
                    good.append(row)
        if rejected and not good and not target.exists():
            return rejected  # nothing of this window can be written: leave no empty file behind
        append = self.config.mode == "append"
        if append and not good:
            return rejected  # nothing to append (a replaced window's file says it had no rows: an empty one)
        write = self._append if append else self._replace
        if self.context.worker.count == 1:
            write(target, lines, good)
            return rejected
        # `workers = N` share this folder: read, merge and replace a window's file one process at a time
        # (a lock on the folder itself, no file beside the windows), each through its own temporary file
        # (two workers' interleaved writes to one had corrupted a window's file). One process needs no
        # lock, which also keeps folders on mounts without flock (some NFS, FUSE) usable.
        folder = os.open(self.dir, os.O_RDONLY)
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            write(target, lines, good)
        finally:
            os.close(folder)  # releases the lock
        return rejected

    def _append(self, target: Path, lines: list[bytes], good: list[dict[str, Any]]) -> None:
        """Append `lines` to the day's file (`mode = "append"`), whole lines or nothing (a full disk's
        part of a write is taken back before the policy retries; a line a crash tore is cut first)."""
        if target not in self._checked:
            drop_torn_tail(target)
            self._checked.add(target)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)
        try:
            append_whole(fd, b"".join(lines), size=os.fstat(fd).st_size, fsync=self.config.fsync)
        finally:
            os.close(fd)

    def _replace(self, target: Path, lines: list[bytes], good: list[dict[str, Any]]) -> None:
        """Write `lines` (of the rows `good`, each with its newline) as the window's file."""
        keys = self.context.key_fields
        if keys and target.exists():
            merged = {_key(r, keys): orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in _read(target)}
            merged.update((_key(r, keys), line) for r, line in zip(good, lines, strict=True))
            lines = list(merged.values())
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            _write_file(tmp, b"".join(lines), self.config.fsync)
            os.replace(tmp, target)
        except OSError:
            tmp.unlink(missing_ok=True)  # named after this process: nobody else would replace it
            raise
        if self.config.fsync:
            fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _write_file(path: Path, data: bytes, fsync: bool) -> None:
    """`data` as the new file `path`, through a bare descriptor: no buffered file object, nor its
    isatty, seek and stat calls, per window."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


_line = functools.partial(orjson.dumps, default=str, option=orjson.OPT_APPEND_NEWLINE)  # encode_row's, one line


def _key(row: dict[str, Any], keys: list[str]) -> bytes:
    return orjson.dumps([row.get(k) for k in keys], default=str)


def _read(path: Path) -> list[dict[str, Any]]:
    with open(path, "rb") as fh:
        return [orjson.loads(line) for line in fh if line.strip()]
