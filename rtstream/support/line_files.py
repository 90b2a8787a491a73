"""Appending whole lines to a file, all or nothing, for the spool and the dead letters.

A full disk (ENOSPC, EDQUOT) may take part of a write: the part is taken back before the error is
raised, and a last line a crash left without its newline is cut when the file is opened again, so
readers only ever see whole lines.
"""

from __future__ import annotations

import os
from pathlib import Path

_TAIL = 65536  # how far back a torn last line is looked for


def append_whole(fd: int, blob: bytes, *, size: int, fsync: bool = True) -> None:
    """Write `blob` at the end of `fd` (whose length is `size`), then fsync; on any OSError the file
    is cut back to `size` and the error raised."""
    try:
        view = memoryview(blob)
        while view:
            view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
    except OSError:
        try:
            os.ftruncate(fd, size)
        except OSError:
            pass  # the next open cuts the torn line
        raise


def drop_torn_tail(path: Path) -> None:
    """Cut a last line that a crash or a full disk left without its newline."""
    try:
        with open(path, "rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return
            fh.seek(max(0, size - _TAIL))
            tail = fh.read()
            if tail.endswith(b"\n"):
                return
            cut = tail.rfind(b"\n")
            fh.truncate(size - len(tail) + cut + 1 if cut >= 0 else (0 if size <= _TAIL else size))
    except FileNotFoundError:
        pass
