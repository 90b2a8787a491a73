"""One window's story for the status page: the log lines that named it and its dead letters.

A click on a grid cell shows what Airflow's task log shows for one run. The log lines come from a
handler that keeps, for the last windows, the lines logged with `extra={"window": start}` (the
flusher logs each attempt, failure and flush that way); dead letters are read from the tail of the
dead-letter file, since a window's letters are among the newest.
"""

from __future__ import annotations

import collections
import logging
import os
from typing import Any

import orjson

KEPT_WINDOWS = 200
LINES_PER_WINDOW = 50
DEAD_LETTER_TAIL = 4 << 20  # bytes of the dead-letter file read for one window's letters
DEAD_LETTERS_SHOWN = 50


class WindowLogs(logging.Handler):
    """The last log lines of each of the last KEPT_WINDOWS windows, by window start."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.by_window: collections.OrderedDict[str, collections.deque[dict[str, Any]]] = collections.OrderedDict()

    def emit(self, record: logging.LogRecord) -> None:
        window = getattr(record, "window", None)
        if not isinstance(window, str):
            return
        lines = self.by_window.get(window)
        if lines is None:
            lines = self.by_window[window] = collections.deque(maxlen=LINES_PER_WINDOW)
            while len(self.by_window) > KEPT_WINDOWS:
                self.by_window.popitem(last=False)
        lines.append({"at": record.created, "level": record.levelname.lower(),
                      "component": getattr(record, "component", None), "message": record.getMessage()})

    def of(self, window_start: str) -> list[dict[str, Any]]:
        return list(self.by_window.get(window_start, ()))


def dead_letters_of(path: str, window_start: str) -> list[dict[str, Any]]:
    """The newest dead letters of the window starting at `window_start` (from the file's tail)."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            fh.seek(max(0, size - DEAD_LETTER_TAIL))
            tail = fh.read()
    except OSError:
        return []
    found = []
    for line in tail.splitlines():
        if window_start.encode() not in line:
            continue  # cheap before parsing
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # the first line of the tail may be cut
        if isinstance(doc, dict) and doc.get("window_start") == window_start:
            found.append(doc)
    return found[-DEAD_LETTERS_SHOWN:]
