"""Each try of a task instance as the grid shows it: when it started and ended, how it ended, and
the log lines and prints it produced (Airflow's per-try task log), kept in the run store.

A try's lines are captured by a context variable set when the try announces itself (`running`):
the run's asyncio task for that try carries it, and the thread of a sync callable gets a copy of
that context (rtstream.airflow.task_run), so a log record or a print is the try's wherever it is
made. `capture()` installs the two listeners for the daemon's lifetime: a logging handler on the
root logger and a tee of sys.stdout/sys.stderr (what is printed still reaches the daemon's output).
Lines are bounded per try (the newest LINES_PER_TRY, each cut at LINE_CHARS) and redacted with
rtstream.support.secrets before they are kept.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from rtstream.support.secrets import redact

if TYPE_CHECKING:
    from rtstream.dags.store import RunStore

LINES_PER_TRY = 500
LINE_CHARS = 2000
ENDED = {"success", "failed", "skipped", "up_for_retry", "upstream_failed"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS task_try (
  dag_id TEXT NOT NULL, run_id TEXT NOT NULL, task_id TEXT NOT NULL, map_index INTEGER NOT NULL,
  try_number INTEGER NOT NULL, state TEXT, start_date TEXT NOT NULL, end_date TEXT, duration REAL, log TEXT,
  PRIMARY KEY (dag_id, run_id, task_id, map_index, try_number));
CREATE TABLE IF NOT EXISTS ti_max_tries (
  dag_id TEXT NOT NULL, run_id TEXT NOT NULL, task_id TEXT NOT NULL, map_index INTEGER NOT NULL,
  max_tries INTEGER NOT NULL, PRIMARY KEY (dag_id, run_id, task_id, map_index));
"""

TryKey = tuple[str, str, str, int, int]  # dag_id, run_id, task_id, map_index, try_number


class TryLog:
    """One try's lines, newest LINES_PER_TRY kept; written from the loop and from the try's thread."""

    def __init__(self, key: TryKey):
        self.key = key
        self.lines: collections.deque[str] = collections.deque(maxlen=LINES_PER_TRY)
        self.dropped = 0
        self._partial = ""
        self._lock = threading.Lock()

    def add(self, line: str) -> None:
        line = redact(line[:LINE_CHARS])
        with self._lock:
            if len(self.lines) == LINES_PER_TRY:
                self.dropped += 1
            self.lines.append(line)

    def write(self, text: str) -> None:
        """Printed text: whole lines are kept as they end; a last partial line when the try ends."""
        with self._lock:
            text, self._partial = self._partial + text, ""
        *whole, rest = text.split("\n")
        for line in whole:
            self.add(line)
        with self._lock:
            self._partial = rest[: LINE_CHARS * 2]

    def text_lines(self) -> list[str]:
        with self._lock:
            partial, self._partial = self._partial, ""
        if partial:
            self.add(partial)
        with self._lock:
            head = [f"({self.dropped} earlier lines not kept)"] if self.dropped else []
            return head + list(self.lines)


current_try: ContextVar[TryLog | None] = ContextVar("rtstream_dag_try", default=None)


class _TryLogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        log = current_try.get()
        if log is None:
            return
        stamp = time.strftime("%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}"
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        for n, line in enumerate(text.split("\n")):
            log.add(f"{stamp} {record.levelname} {record.name}: {line}" if n == 0 else f"    {line}")


class _Tee:
    """sys.stdout or sys.stderr: everything goes to the real stream; a try's prints are also its lines."""

    def __init__(self, real: TextIO):
        self.real = real

    def write(self, text: str) -> int:
        log = current_try.get()
        if log is not None:
            log.write(text)
        return self.real.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@contextlib.contextmanager
def capture() -> Iterator[None]:
    """Route every try's log records and prints to its TryLog while the daemon runs DAGs."""
    handler = _TryLogHandler(level=logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    real_out, real_err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Tee(real_out), _Tee(real_err)  # type: ignore[assignment]
    try:
        yield
    finally:
        root.removeHandler(handler)
        sys.stdout, sys.stderr = real_out, real_err


class TryRecorder:
    """Writes a task instance's tries as its state changes (called by the durable run's `_save`)."""

    def __init__(self, store: RunStore):
        self.store = store
        self.live: dict[TryKey, TryLog] = {}  # tries running now, for the grid's live lines
        with store.transaction() as db:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

    def saw(self, dag_id: str, run_id: str, ti: Any, now: datetime) -> None:
        key: TryKey = (dag_id, run_id, ti.task_id, ti.map_index, ti.try_number)
        if ti.state == "running":
            started = TryLog(key)
            current_try.set(started)  # in the try's own task: its logs, prints and thread see it
            self.live[key] = started
            with self.store.transaction() as db:
                db.execute("INSERT OR REPLACE INTO task_try VALUES (?, ?, ?, ?, ?, 'running', ?, NULL, NULL, NULL)",
                           (*key, now.isoformat()))
            return
        if ti.state not in ENDED or ti.try_number < 1:
            return
        log = self.live.pop(key, None)
        if log is None and (mine := current_try.get()) is not None and mine.key == key:
            log = mine
        if log is not None and current_try.get() is log:
            current_try.set(None)
        lines = "\n".join(log.text_lines()) if log is not None else None
        with self.store.transaction() as db:
            db.execute("UPDATE task_try SET state = ?, end_date = ?, log = COALESCE(?, log), duration = "
                       "(julianday(?) - julianday(start_date)) * 86400.0 WHERE dag_id = ? AND run_id = ? AND "
                       "task_id = ? AND map_index = ? AND try_number = ? AND end_date IS NULL",
                       (ti.state, now.isoformat(), lines, now.isoformat(), *key))

    def max_tries(self, dag_id: str, run_id: str) -> dict[tuple[str, int], int]:
        """The max_tries a clear gave task instances of this run (Airflow: tries so far + retries)."""
        rows = self.store.query("SELECT task_id, map_index, max_tries FROM ti_max_tries WHERE dag_id = ? AND "
                                "run_id = ?", (dag_id, run_id))
        return {(r[0], r[1]): r[2] for r in rows}
