"""The window-run history, Airflow's grid as data: one row per (window, component), kept in SQLite
under state_dir so it survives restarts, trimmed to the last `history` windows."""

from __future__ import annotations

import contextlib
import itertools
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from rtstream.model.errors import StateDirError
from rtstream.support.secrets import redact

log = logging.getLogger("rtstream.history")
STATES = ("running", "success", "retrying", "failed", "dead_lettered")
LINES_PER_WINDOW = 50  # log lines kept per window
_UPSERT = ("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (window_start, component) DO UPDATE SET "
           "state=excluded.state, attempts=excluded.attempts, records=coalesce(excluded.records, records), "
           "duration_ms=coalesce(excluded.duration_ms, duration_ms), error=excluded.error, updated=excluded.updated")
_ADD_LOG = "INSERT INTO logs VALUES (?,?,?,?,?)"
_TRIM_LOGS = ("DELETE FROM logs WHERE window_start = ? AND rowid NOT IN (SELECT rowid FROM logs "
              "WHERE window_start = ? ORDER BY rowid DESC LIMIT ?)")
_FLUSHED = "UPDATE totals SET value = value + ? WHERE name = 'windows_flushed'"
_TRIM_RUNS = ("DELETE FROM runs WHERE window_start NOT IN (SELECT DISTINCT window_start FROM runs "
              "ORDER BY window_start DESC LIMIT ?)")
_TRIM_ALL_LOGS = ("DELETE FROM logs WHERE window_start NOT IN (SELECT DISTINCT window_start FROM logs "
                  "ORDER BY window_start DESC LIMIT ?)")


class RunHistory:
    def __init__(self, path: Path, keep_windows: int = 100):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.keep = keep_windows
        self._lock = threading.Lock()
        # while deferring (a group of windows flushed together, runtime/flush_group.py), writes wait
        # here in order and go to SQLite in one transaction: one commit per group, not six per window
        self._deferred: list[tuple[str, tuple[Any, ...]]] | None = None
        self._trim_logs: set[str] = set()  # windows whose log lines are cut to the newest, once, at the write
        # also once at the write: the windows flushed meanwhile, and the trim to the newest `keep` windows
        # where the last was asked (an earlier one removes nothing the last one would keep)
        self._flushed = 0
        self._trim_at: int | None = None
        # (window, component) -> where its deferred run row waits: a later state of the same run (a sink's
        # "running", then its "success") is folded into it, one row written where two were
        self._run_at: dict[tuple[str, str], int] = {}
        # replicas may share a state volume: wait for each other's writes rather than fail
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        for attempt in range(50):
            try:
                # switching to WAL can answer "locked" at once, without waiting, while another
                # process creates the same file: try again for a few seconds
                self._db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.1)
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            self._create_tables()
        except sqlite3.OperationalError as exc:  # a full or read-only state_dir: one clear line, no traceback
            self._db.close()
            reason = "No space left on device" if "full" in str(exc) else str(exc)
            raise StateDirError(f"cannot write the run history {path}: {reason}") from None

    def _create_tables(self) -> None:
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS runs (window_start TEXT, window_end TEXT, component TEXT, kind TEXT, "
            "state TEXT, attempts INTEGER, records INTEGER, duration_ms REAL, error TEXT, updated REAL, "
            "PRIMARY KEY (window_start, component))")
        # a window's log lines (runtime/window_log.py) and running totals, so a restart keeps both
        self._db.execute("CREATE TABLE IF NOT EXISTS logs (window_start TEXT, at REAL, level TEXT, component TEXT, "
                         "message TEXT)")
        self._db.execute("CREATE INDEX IF NOT EXISTS logs_window ON logs (window_start)")
        self._db.execute("CREATE TABLE IF NOT EXISTS totals (name TEXT PRIMARY KEY, value INTEGER)")
        # a history from before the totals: its windows are the best count there is
        self._db.execute("INSERT OR IGNORE INTO totals SELECT 'windows_flushed', count(DISTINCT window_start) FROM runs")

    def update(self, window_start: str, window_end: str, component: str, kind: str, state: str, *,
               attempts: int = 1, records: int | None = None, duration_ms: float | None = None,
               error: str | None = None) -> None:
        """Record a run's state; the history is for people, so a failure here never stops the pipeline.
        An error text is stored redacted (it may quote a sink's URL, with its password)."""
        if error is not None:
            error = redact(error)
        try:
            self._update(window_start, window_end, component, kind, state, attempts, records, duration_ms, error)
        except sqlite3.Error as exc:
            log.warning("run history not updated: %s", exc)

    def _update(self, window_start: str, window_end: str, component: str, kind: str, state: str, attempts: int,
                records: int | None, duration_ms: float | None, error: str | None) -> None:
        params = (window_start, window_end, component, kind, state, attempts, records, duration_ms, error, time.time())
        if self._deferred is not None:
            at = self._run_at.get((window_start, component))
            if at is None:
                self._run_at[(window_start, component)] = len(self._deferred)
                self._deferred.append((_UPSERT, params))
                return
            # as the two upserts one after the other: the first's end and kind (a conflict keeps those)
            # and the later values, its counts falling back on the first's
            first = self._deferred[at][1]
            self._deferred[at] = (_UPSERT, (*first[:4], state, attempts, first[6] if records is None else records,
                                            first[7] if duration_ms is None else duration_ms, error, params[9]))
            return
        with self._lock:
            self._db.execute(_UPSERT, params)

    def trim(self) -> None:
        if self._deferred is not None:
            self._trim_at = len(self._deferred)
            self._run_at.clear()  # a run row after the trim is not folded into one before it
            return
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.execute(_TRIM_RUNS, (self.keep,))
            self._db.execute(_TRIM_ALL_LOGS, (self.keep,))

    def note_flushed(self) -> None:
        """One more window written to every sink (the status page's header counts them across restarts)."""
        if self._deferred is not None:
            self._flushed += 1
            return
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.execute(_FLUSHED, (1,))

    def defer(self) -> None:
        """From now on keep writes in order in memory until `write_deferred` (a group flush)."""
        if self._deferred is None:
            self._deferred = []

    def write_deferred(self, *, stop: bool = False) -> None:
        """Write what was deferred in one transaction (each row as it was asked, in order; the trims
        once, where the last was asked; the count of windows flushed once); with `stop`, write directly
        again after. A failure is logged: the history never stops the pipeline."""
        pending, self._deferred = self._deferred or [], (None if stop else [])
        if self._trim_at is not None:
            pending[self._trim_at:self._trim_at] = [(_TRIM_RUNS, (self.keep,)), (_TRIM_ALL_LOGS, (self.keep,))]
        pending += [(_TRIM_LOGS, (w, w, LINES_PER_WINDOW)) for w in sorted(self._trim_logs)]
        if self._flushed:
            pending.append((_FLUSHED, (self._flushed,)))
        self._trim_logs, self._flushed, self._trim_at = set(), 0, None
        self._run_at.clear()
        if not pending:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN")
                for sql, rows in itertools.groupby(pending, key=lambda p: p[0]):
                    self._db.executemany(sql, [params for _, params in rows])
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                log.warning("run history not updated: %s", exc)

    def flushed_total(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM totals WHERE name = 'windows_flushed'").fetchone()
        return int(row[0]) if row else 0

    def add_log(self, window_start: str, at: float, level: str, component: str | None, message: str) -> None:
        """Keep a log line of the window (redacted), at most LINES_PER_WINDOW of them, the newest."""
        line = (window_start, at, level, component, redact(message)[:2000])
        keep = (window_start, window_start, LINES_PER_WINDOW)
        if self._deferred is not None:  # cutting once after the inserts keeps the same newest lines
            self._deferred.append((_ADD_LOG, line))
            self._trim_logs.add(window_start)
            return
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.execute(_ADD_LOG, line)
            self._db.execute(_TRIM_LOGS, keep)

    def logs(self, window_start: str) -> list[dict[str, Any]]:
        """The window's kept log lines, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT at, level, component, message FROM logs WHERE window_start = ? "
                                    "ORDER BY rowid", (window_start,)).fetchall()
        return [{"at": at, "level": level, "component": comp, "message": msg} for at, level, comp, msg in rows]

    def windows(self, limit: int | None = None, before: str | None = None) -> list[dict[str, Any]]:
        """Newest first: [{window_start, window_end, components: {name: {...}}}]; with `before`, only
        windows starting before it (the next page: pass the last answer's oldest start)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT window_start, window_end, component, kind, state, attempts, records, duration_ms, error "
                "FROM runs WHERE window_start IN (SELECT DISTINCT window_start FROM runs WHERE window_start < ? "
                "ORDER BY window_start DESC LIMIT ?) ORDER BY window_start DESC",
                (before if before is not None else "\uffff", limit or self.keep)).fetchall()
        return self._grouped(rows)

    def window(self, start: str) -> dict[str, Any] | None:
        """The window starting at `start`, however old, or None."""
        with self._lock:
            rows = self._db.execute(
                "SELECT window_start, window_end, component, kind, state, attempts, records, duration_ms, error "
                "FROM runs WHERE window_start = ?", (start,)).fetchall()
        found = self._grouped(rows)
        return found[0] if found else None

    @staticmethod
    def _grouped(rows: list[Any]) -> list[dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for ws, we, comp, kind, state, attempts, records, dur, err in rows:
            w = out.setdefault(ws, {"window_start": ws, "window_end": we, "components": {}})
            w["components"][comp] = {"kind": kind, "state": state, "attempts": attempts, "records": records,
                                     "duration_ms": dur, "error": redact(err) if err else err}
        return list(out.values())

    def close(self) -> None:
        with self._lock:
            self._db.close()


