"""Airflow 3's task and asset state stores for the daemon, in STATE_DIR/dag_runs.db beside the runs
(Airflow's `task_state_store` and `asset_state_store` tables of its metadata DB): a try that was
interrupted by a kill, or that failed, finds on its next try what the earlier one set; an asset's
state lasts across runs and restarts.

Values are JSON text, each write its own transaction (WAL, as the run store). A task state row keeps
its `expires_at`; rows past it are deleted when the daemon opens the store (Airflow deletes them in
its own cleanup pass, never on read).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

from rtstream.airflow.state_store import Scope

SCHEMA = """
CREATE TABLE IF NOT EXISTS task_state_store (
  scope TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, expires_at TEXT, updated_at TEXT NOT NULL,
  PRIMARY KEY (scope, key));
"""


def _scope(scope: Scope) -> str:
    # one text key per scope: ("task", dag, run, task, map_index) or ("asset", "name"|"uri", value), as a
    # JSON list, so no id (whatever bytes it holds) can make two scopes one
    return json.dumps(list(scope), ensure_ascii=False)


class SqliteStateBackend:
    def __init__(self, path: Path):
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._lock = threading.Lock()  # sync tasks write from their threads
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self._db.execute("DELETE FROM task_state_store WHERE expires_at IS NOT NULL AND expires_at < ?",
                             (datetime.now(UTC).isoformat(),))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def get(self, scope: Scope, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM task_state_store WHERE scope = ? AND key = ?",
                                   (_scope(scope), key)).fetchone()
        return None if row is None else str(row[0])

    def set(self, scope: Scope, key: str, value: str, expires_at: datetime | None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO task_state_store (scope, key, value, expires_at, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at, "
                "updated_at = excluded.updated_at",
                (_scope(scope), key, value, expires_at.isoformat() if expires_at else None,
                 datetime.now(UTC).isoformat()))

    def delete(self, scope: Scope, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM task_state_store WHERE scope = ? AND key = ?", (_scope(scope), key))

    def clear(self, scope: Scope) -> None:
        with self._lock:
            self._db.execute("DELETE FROM task_state_store WHERE scope = ?", (_scope(scope),))


_open: dict[str, SqliteStateBackend] = {}
_open_lock = threading.Lock()


def state_backend(path: Path) -> SqliteStateBackend:
    """One backend per database file for the process (each DAG run of the daemon shares it)."""
    key = str(path.resolve())
    with _open_lock:
        if key not in _open:
            _open[key] = SqliteStateBackend(path)
        return _open[key]
