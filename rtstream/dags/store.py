"""The DAG runs of the daemon, kept in `STATE_DIR/dag_runs.db` (SQLite, WAL): Airflow's `dag_run`,
`task_instance` and `xcom` tables, cut down to what a restart needs.

A run is keyed by (dag_id, logical_date) and by (dag_id, run_id): the scheduler inserts it before it
starts it, so a restart resumes it rather than creating it again, and the next interval is computed
from the latest one kept here. Every write is its own transaction (a state change of a task instance
is committed before the try it announces begins). WAL with synchronous=NORMAL survives a killed
process (not a power cut). Writes come from the event loop and from task threads (`ti.xcom_push`
inside a sync callable), so one lock guards the connection.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS dag_run (
  dag_id TEXT NOT NULL, run_id TEXT NOT NULL, logical_date TEXT NOT NULL,
  interval_start TEXT NOT NULL, interval_end TEXT NOT NULL, run_type TEXT NOT NULL,
  state TEXT NOT NULL, start_date TEXT NOT NULL, end_date TEXT,
  PRIMARY KEY (dag_id, run_id), UNIQUE (dag_id, logical_date));
CREATE TABLE IF NOT EXISTS task_instance (
  dag_id TEXT NOT NULL, run_id TEXT NOT NULL, task_id TEXT NOT NULL, map_index INTEGER NOT NULL,
  state TEXT, try_number INTEGER NOT NULL, branch TEXT, short_circuit INTEGER, updated_at TEXT NOT NULL,
  PRIMARY KEY (dag_id, run_id, task_id, map_index));
CREATE TABLE IF NOT EXISTS mapped (
  dag_id TEXT NOT NULL, run_id TEXT NOT NULL, task_id TEXT NOT NULL, count INTEGER NOT NULL,
  PRIMARY KEY (dag_id, run_id, task_id));
CREATE TABLE IF NOT EXISTS xcom (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, dag_id TEXT NOT NULL, run_id TEXT NOT NULL, task_id TEXT NOT NULL,
  map_index INTEGER NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS xcom_ti ON xcom (dag_id, run_id, task_id, map_index);
CREATE TABLE IF NOT EXISTS schedule_taken (
  dag_id TEXT NOT NULL, logical_date TEXT NOT NULL, interval_start TEXT NOT NULL, interval_end TEXT NOT NULL,
  PRIMARY KEY (dag_id, logical_date));
"""


@dataclass(frozen=True)
class StoredRun:
    dag_id: str
    run_id: str
    logical_date: datetime
    interval_start: datetime
    interval_end: datetime
    run_type: str
    state: str
    start_date: datetime


@dataclass(frozen=True)
class StoredTaskInstance:
    task_id: str
    map_index: int
    state: str | None
    try_number: int
    branch: set[str] | None
    short_circuit: bool | None


def _run(row: tuple[Any, ...]) -> StoredRun:
    d = datetime.fromisoformat
    return StoredRun(row[0], row[1], d(row[2]), d(row[3]), d(row[4]), row[5], row[6], d(row[7]))


class RunStore:
    """Runs, task instances and XComs of every DAG of the daemon."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path  # dags/state_tables.py keeps Airflow 3's state stores in the same file
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # the grid's tables (rtstream.dags.tries, rtstream.dags.clearing) share the connection and its lock
    transaction = _tx
    query = _query

    def run(self, dag_id: str, run_id: str) -> StoredRun | None:
        rows = self._query("SELECT * FROM dag_run WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        return _run(rows[0]) if rows else None

    # -- runs
    def create_run(self, dag_id: str, run_id: str, logical_date: datetime, interval: tuple[datetime, datetime],
                   run_type: str, now: datetime) -> StoredRun:
        """Insert a new running run; the one already kept for that logical date if there is one."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO dag_run VALUES (?, ?, ?, ?, ?, ?, 'running', ?, NULL)",
                       (dag_id, run_id, logical_date.isoformat(), interval[0].isoformat(), interval[1].isoformat(),
                        run_type, now.isoformat()))
            row = db.execute("SELECT * FROM dag_run WHERE dag_id = ? AND logical_date = ?",
                             (dag_id, logical_date.isoformat())).fetchone()
        return _run(row)

    def finish_run(self, dag_id: str, run_id: str, state: str, now: datetime) -> None:
        with self._tx() as db:
            db.execute("UPDATE dag_run SET state = ?, end_date = ? WHERE dag_id = ? AND run_id = ?",
                       (state, now.isoformat(), dag_id, run_id))

    def unfinished_runs(self, dag_id: str) -> list[StoredRun]:
        rows = self._query("SELECT * FROM dag_run WHERE dag_id = ? AND state = 'running' ORDER BY logical_date",
                           (dag_id,))
        return [_run(r) for r in rows]

    def last_scheduled_interval(self, dag_id: str) -> tuple[datetime, datetime] | None:
        """The data interval of the latest scheduled run (Airflow's last automated run), or of the latest
        interval passed over because another run (a triggered one) had its logical date."""
        rows = self._query("SELECT logical_date, interval_start, interval_end FROM dag_run WHERE dag_id = ? AND "
                           "run_type = 'scheduled' UNION ALL SELECT logical_date, interval_start, interval_end "
                           "FROM schedule_taken WHERE dag_id = ? ORDER BY 1 DESC LIMIT 1", (dag_id, dag_id))
        return (datetime.fromisoformat(rows[0][1]), datetime.fromisoformat(rows[0][2])) if rows else None

    def pass_over(self, dag_id: str, logical_date: datetime, interval: tuple[datetime, datetime]) -> None:
        """A scheduled interval whose logical date another run has: Airflow's scheduler creates no run for
        it and goes on with the next (SchedulerJobRunner._create_dag_runs)."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO schedule_taken VALUES (?, ?, ?, ?)",
                       (dag_id, logical_date.isoformat(), interval[0].isoformat(), interval[1].isoformat()))

    def take_queued(self, dag_id: str, now: datetime) -> StoredRun | None:
        """The oldest queued run (a triggered one), made running from now; None when none is queued."""
        with self._tx() as db:
            row = db.execute("SELECT run_id FROM dag_run WHERE dag_id = ? AND state = 'queued' "
                             "ORDER BY logical_date LIMIT 1", (dag_id,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE dag_run SET state = 'running', start_date = ? WHERE dag_id = ? AND run_id = ?",
                       (now.isoformat(), dag_id, row[0]))
            got = db.execute("SELECT * FROM dag_run WHERE dag_id = ? AND run_id = ?", (dag_id, row[0])).fetchone()
        return _run(got)

    def runs(self, dag_id: str) -> list[StoredRun]:
        return [_run(r) for r in self._query("SELECT * FROM dag_run WHERE dag_id = ? ORDER BY logical_date",
                                             (dag_id,))]

    # -- task instances
    def save_ti(self, dag_id: str, run_id: str, task_id: str, map_index: int, state: str | None, try_number: int,
                branch: set[str] | None, short_circuit: bool | None, now: datetime,
                then: Callable[[sqlite3.Connection], None] | None = None) -> None:
        """`then` writes in the same transaction (a success's asset events, rtstream.dags.asset_triggers)."""
        with self._tx() as db:
            if state == "running":  # a new try: Airflow clears the XComs of the instance as it starts
                db.execute("DELETE FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = ?",
                           (dag_id, run_id, task_id, map_index))
            db.execute("INSERT OR REPLACE INTO task_instance VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (dag_id, run_id, task_id, map_index, state, try_number,
                        json.dumps(sorted(branch)) if branch is not None else None,
                        None if short_circuit is None else int(short_circuit), now.isoformat()))
            if then is not None:
                then(db)

    def task_instances(self, dag_id: str, run_id: str) -> list[StoredTaskInstance]:
        rows = self._query("SELECT task_id, map_index, state, try_number, branch, short_circuit FROM task_instance "
                           "WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        return [StoredTaskInstance(r[0], r[1], r[2], r[3], set(json.loads(r[4])) if r[4] is not None else None,
                                   None if r[5] is None else bool(r[5])) for r in rows]

    def save_mapped(self, dag_id: str, run_id: str, task_id: str, count: int) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO mapped VALUES (?, ?, ?, ?)", (dag_id, run_id, task_id, count))

    def mapped(self, dag_id: str, run_id: str) -> dict[str, int]:
        return dict(self._query("SELECT task_id, count FROM mapped WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)))

    # -- XComs
    def push_xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int, key: str, value: Any) -> None:
        blob = pickle.dumps(value)  # raises for a value that cannot be kept: the try fails, as in Airflow
        with self._tx() as db:
            db.execute("DELETE FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = ? AND key = ?",
                       (dag_id, run_id, task_id, map_index, key))
            db.execute("INSERT INTO xcom (dag_id, run_id, task_id, map_index, key, value) VALUES (?, ?, ?, ?, ?, ?)",
                       (dag_id, run_id, task_id, map_index, key, blob))

    def xcoms(self, dag_id: str, run_id: str) -> list[tuple[str, int, str, Any]]:
        """(task_id, map_index, key, value) in push order."""
        rows = self._query("SELECT task_id, map_index, key, value FROM xcom WHERE dag_id = ? AND run_id = ? "
                           "ORDER BY seq", (dag_id, run_id))
        return [(r[0], r[1], r[2], pickle.loads(r[3])) for r in rows]
