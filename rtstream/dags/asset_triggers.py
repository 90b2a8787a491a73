"""Asset events and the runs they trigger, kept in `dag_runs.db`: Airflow 2.10's `DatasetManager`
(`register_dataset_change`, `_queue_dagruns`) and the scheduler's `_create_dag_runs_dataset_triggered`.

A task instance with `Dataset`/`Asset` outlets that succeeds writes, in the transaction of its
`success` state, one `asset_event` per outlet and one `asset_queue` row per consuming DAG of the daemon
and asset (Airflow's `DatasetDagRunQueue`: one row per (consumer, asset), a further event while it is
queued adds none). A consumer whose condition holds over its queued assets gets, in one transaction,
its run (`dataset_triggered__<logical date>`, the logical date the latest event's time), the events it
consumes (every event of its assets since its previous dataset-triggered run's logical date) and its
queue emptied. So a kill before that transaction leaves the queue for the next start, and one after leaves
a `running` run the scheduler resumes: a consumer runs exactly once per queue.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from rtstream.airflow.asset_schedule import Aliases, AssetId, condition_of, consumes, evaluate, outlet_ids
from rtstream.airflow.assets import BaseAsset
from rtstream.airflow.dag_model import DAG
from rtstream.dags.asset_reads import alias_events, outlet_extras
from rtstream.dags.store import RunStore, StoredRun

log = logging.getLogger("rtstream.dags")

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS asset_event (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, uri TEXT NOT NULL, source_dag_id TEXT NOT NULL,
      source_run_id TEXT NOT NULL, source_task_id TEXT NOT NULL, source_map_index INTEGER NOT NULL,
      source_try INTEGER NOT NULL, interval_start TEXT NOT NULL, interval_end TEXT NOT NULL, timestamp TEXT NOT NULL,
      UNIQUE (source_dag_id, source_run_id, source_task_id, source_map_index, source_try, name, uri))""",
    "CREATE INDEX IF NOT EXISTS asset_event_time ON asset_event (timestamp)",
    """CREATE TABLE IF NOT EXISTS asset_queue (
      target_dag_id TEXT NOT NULL, name TEXT NOT NULL, uri TEXT NOT NULL, created_at TEXT NOT NULL,
      PRIMARY KEY (target_dag_id, name, uri))""",
    """CREATE TABLE IF NOT EXISTS asset_alias (
      alias TEXT NOT NULL, name TEXT NOT NULL, uri TEXT NOT NULL, PRIMARY KEY (alias, name, uri))""",
    """CREATE TABLE IF NOT EXISTS asset_consumed (
      dag_id TEXT NOT NULL, run_id TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (dag_id, run_id, seq))""",
]


def _ts(dt: datetime) -> str:
    """A UTC time of fixed width, so the text compares as the time does."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


class AssetTriggers:
    def __init__(self, dags: list[DAG], store: RunStore):
        self.store = store
        self.conditions: dict[str, BaseAsset] = {}
        for dag in dags:
            cond = condition_of(dag)
            if cond is not None:
                self.conditions[dag.dag_id] = cond
        # told the consumers queued (from the loop or a task's thread): the scheduler wakes their loops
        self.on_queued: Callable[[list[str]], None] = lambda dag_ids: None
        with store.transaction() as db:
            for statement in SCHEMA:
                db.execute(statement)
            columns = {r[1] for r in db.execute("PRAGMA table_info(asset_event)")}
            for column in ("extra", "source_aliases"):  # JSON; absent from a store of an older rtstream
                if column not in columns:
                    db.execute(f"ALTER TABLE asset_event ADD COLUMN {column} TEXT")

    def writer(self, dag_id: str, run: StoredRun, ti: Any, now: datetime) -> Callable[[sqlite3.Connection], None] | None:
        """What the success of `ti` writes in its transaction: its outlets' events (with the extras the try
        set) and the events it added through its alias outlets, the consumers queued."""
        extras = outlet_extras(ti)  # what the try put in outlet_events[...] or yielded as Metadata
        events: dict[AssetId, tuple[str | None, list[str]]] = {aid: (extras.get(aid), []) for aid in outlet_ids(ti.task)}
        for aid, extra, alias in alias_events(ti):  # one event per asset, naming every alias it came through
            had, names = events.get(aid, (None, []))
            events[aid] = (extra or had, names if alias in names else [*names, alias])
        if not events:
            return None

        def write(db: sqlite3.Connection) -> None:
            queued: list[str] = []
            for (name, uri), (extra, aliases) in events.items():
                db.executemany("INSERT OR IGNORE INTO asset_alias VALUES (?, ?, ?)", [(a, name, uri) for a in aliases])
                cur = db.execute("INSERT OR IGNORE INTO asset_event (name, uri, source_dag_id, source_run_id, "
                                 "source_task_id, source_map_index, source_try, interval_start, interval_end, "
                                 "timestamp, extra, source_aliases) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                 (name, uri, dag_id, run.run_id, ti.task_id, ti.map_index, ti.try_number,
                                  run.interval_start.isoformat(), run.interval_end.isoformat(), _ts(now), extra,
                                  json.dumps(aliases) if aliases else None))
                if cur.rowcount == 0:
                    continue
                queued.extend(self.queue(db, name, uri, now))
            if queued:
                self.on_queued(sorted(set(queued)))

        return write

    @staticmethod
    def aliases(db: sqlite3.Connection) -> Aliases:
        found: Aliases = {}
        for alias, name, uri in db.execute("SELECT alias, name, uri FROM asset_alias"):
            found.setdefault(alias, set()).add((name, uri))
        return found

    def queue(self, db: sqlite3.Connection, name: str, uri: str, now: datetime) -> list[str]:
        """Queue every consumer of the asset (in the transaction of its new event); the consumers queued."""
        queued = []
        aliases = self.aliases(db)
        for target, cond in self.conditions.items():
            if consumes(cond, (name, uri), aliases):
                db.execute("INSERT OR IGNORE INTO asset_queue VALUES (?, ?, ?, ?)", (target, name, uri, _ts(now)))
                queued.append(target)
        return queued

    def take(self, dag_id: str, now: datetime) -> StoredRun | None:
        """The consumer's dataset-triggered run, created when its queued assets satisfy its condition."""
        cond = self.conditions.get(dag_id)
        if cond is None:
            return None
        with self.store.transaction() as db:
            rows = db.execute("SELECT name, uri, created_at FROM asset_queue WHERE target_dag_id = ?",
                              (dag_id,)).fetchall()
            aliases = self.aliases(db)
            if not rows or not evaluate(cond, {(r[0], r[1]) for r in rows}, aliases):
                return None
            queued_at = max(r[2] for r in rows)
            prev = db.execute("SELECT logical_date FROM dag_run WHERE dag_id = ? AND run_type = 'dataset_triggered' "
                              "ORDER BY logical_date DESC LIMIT 1", (dag_id,)).fetchone()
            since = _ts(datetime.fromisoformat(prev[0])) if prev else ""
            # every event of its assets since its previous run, up to now (Airflow: up to the queue's time,
            # leaving an event that came while the queue waited to no run's consumed events)
            events = [e for e in db.execute("SELECT seq, name, uri, interval_start, interval_end, timestamp "
                                            "FROM asset_event WHERE timestamp > ? ORDER BY seq", (since,)).fetchall()
                      if consumes(cond, (e[1], e[2]), aliases)]
            logical = datetime.fromisoformat(max([queued_at, *(e[5] for e in events)]))
            while db.execute("SELECT 1 FROM dag_run WHERE dag_id = ? AND logical_date = ?",
                             (dag_id, logical.isoformat())).fetchone():
                logical += timedelta(microseconds=1)  # logical dates are unique per DAG
            # DatasetTriggeredTimetable.data_interval_for_events: the span of the source runs' intervals
            start = min((datetime.fromisoformat(e[3]) for e in events), default=logical)
            end = max((datetime.fromisoformat(e[4]) for e in events), default=logical)
            run_id = f"dataset_triggered__{logical.isoformat()}"
            db.execute("INSERT INTO dag_run VALUES (?, ?, ?, ?, ?, 'dataset_triggered', 'running', ?, NULL)",
                       (dag_id, run_id, logical.isoformat(), start.isoformat(), end.isoformat(), now.isoformat()))
            db.executemany("INSERT OR IGNORE INTO asset_consumed VALUES (?, ?, ?)",
                           [(dag_id, run_id, e[0]) for e in events])
            db.execute("DELETE FROM asset_queue WHERE target_dag_id = ?", (dag_id,))
        log.info("%s: %s triggered by %d asset event(s) of %s", dag_id, run_id, len(events),
                 ", ".join(sorted({e[2] for e in events})) or "assets queued earlier")
        return self.store.run(dag_id, run_id)

    def consumed(self, dag_id: str, run_id: str) -> list[tuple[str, str, str, str]]:
        """(uri, source dag_id, source run_id, source task_id) of the events a run consumed, oldest first."""
        return [tuple(r) for r in self.store.query(  # type: ignore[misc]
            "SELECT e.uri, e.source_dag_id, e.source_run_id, e.source_task_id FROM asset_consumed c JOIN asset_event e "
            "ON e.seq = c.seq WHERE c.dag_id = ? AND c.run_id = ? ORDER BY e.seq", (dag_id, run_id))]
