"""The log lines that name a window, kept in the run history's database so they survive a restart.

The flusher logs each attempt, failure and flush with `extra={"window": start}`; this handler, put
on the root logger while the runtime runs, writes those lines (INFO and above, redacted) to the run
history (RunHistory.add_log), which keeps at most LINES_PER_WINDOW per window and drops a window's
lines with its runs when the history is trimmed. The status page reads them from there.
"""

from __future__ import annotations

import contextvars
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rtstream.runtime.run_history import RunHistory


# the recorder of the runtime whose task (and the tasks it starts) is logging: in a daemon of several
# pipelines each runtime keeps its own windows' lines, not those of another pipeline's same window
_RECORDER: contextvars.ContextVar[WindowLogRecorder | None] = contextvars.ContextVar("rtstream_window_log",
                                                                                     default=None)


class WindowLogRecorder(logging.Handler):
    def __init__(self, history: RunHistory):
        super().__init__(level=logging.INFO)
        self.history = history
        _RECORDER.set(self)  # made in the runtime's own task, before it starts the others

    def emit(self, record: logging.LogRecord) -> None:
        window = getattr(record, "window", None)
        if not isinstance(window, str) or _RECORDER.get() not in (self, None):
            return
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is the caller's; never fail a log call
            return
        self.history.add_log(window, record.created, record.levelname.lower(), getattr(record, "component", None),
                             message)
