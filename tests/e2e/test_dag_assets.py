"""The real `rtstream run --dags` process running DAGs scheduled on datasets: a producer's task with an
outlet queues its consumers (`Dataset`, `|`, `&`, `DatasetOrTimeSchedule`), durably across a SIGKILL."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.support import Daemon, read_jsonl, wait_until, write_config

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "dags_daemon" / "assets_chain.py"


class AssetSetup:
    def __init__(self, tmp: Path, gate: bool = False):
        self.tmp = tmp
        (tmp / "dags").mkdir()
        (tmp / "dags" / "assets_chain.py").write_text(FIXTURE.read_text())
        self.out, self.db, self.gate = tmp / "out.jsonl", tmp / "state" / "dag_runs.db", tmp / "gate"
        self.config = write_config(tmp / "dags.toml", {"dags": {"path": "dags"},
                                                       "daemon": {"state_dir": "state", "shutdown_grace": "5s"}})
        now = time.time()
        self.start = int(now) - 1  # producer_a: 4 runs, due now, +1s, +2s, +3s
        self.cron_start, self.cron_end = int(now) - 180, int(now) - 1
        self.env = {"RTSTREAM_ASSET_OUT": str(self.out), "RTSTREAM_ASSET_START": str(self.start),
                    "RTSTREAM_ASSET_END": str(self.start + 3), "RTSTREAM_ASSET_B_AT": str(now + 1.5),
                    "RTSTREAM_ASSET_CRON_START": str(self.cron_start), "RTSTREAM_ASSET_CRON_END": str(self.cron_end),
                    **({"RTSTREAM_ASSET_GATE": str(self.gate)} if gate else {})}

    def daemon(self) -> Daemon:
        return Daemon(self.config, self.tmp, env=self.env)

    def lines(self, dag: str) -> list[dict[str, Any]]:
        return [r for r in read_jsonl(self.out) if r["dag"] == dag] if self.out.exists() else []

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        if not self.db.exists():
            return []
        try:
            with contextlib.closing(sqlite3.connect(self.db, timeout=10)) as db:
                return db.execute(query, args).fetchall()
        except sqlite3.OperationalError:
            return []  # the daemon is creating its tables

    def runs(self, dag: str) -> list[tuple[str, str, str, str]]:
        return [tuple(r) for r in self.sql("SELECT run_id, state, interval_start, interval_end FROM dag_run "  # type: ignore[misc]
                                           "WHERE dag_id = ? ORDER BY logical_date", dag)]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


def test_consumers_run_per_event_on_any_on_all_and_on_time(tmp_path: Path) -> None:
    s = AssetSetup(tmp_path)
    producer = [(_iso(s.start + k), _iso(s.start + k + 1)) for k in range(4)]
    minutes = [m for m in range(s.cron_start, s.cron_end + 1) if m % 60 == 0]  # CronTriggerTimetable's points
    with s.daemon() as d:
        wait_until(lambda: len(s.lines("producer_a")) == 4 and len(s.lines("producer_b")) == 1, 60,
                   what="the producers' runs")
        wait_until(lambda: len(s.lines("on_a")) == 4 and len(s.lines("on_a_or_b")) == 5
                   and len(s.lines("on_a_or_time")) == len(minutes) and len(s.lines("on_a_and_b")) == 1
                   and len([r for r in s.runs("on_a_or_time") if r[1] == "success"]) == 4 + len(minutes), 90,
                   what="the consumers' runs")  # a loaded 2-core machine needed more than 30 s once
        time.sleep(1.5)  # nothing more is due: a further run would show here
        d.signal(signal.SIGTERM)
        assert d.wait(20) == 0, d.stderr
    on_a = s.runs("on_a")
    assert [r[1] for r in on_a] == ["success"] * 4
    assert all(r[0].startswith("dataset_triggered__") for r in on_a), on_a
    # each run consumed one producer run's event: its data interval is that run's (data_interval_for_events)
    assert sorted((r[2], r[3]) for r in on_a) == producer
    assert Counter(r["run_id"] for r in s.lines("on_a")) == Counter({r[0]: 1 for r in on_a})
    assert len(s.runs("on_a_or_b")) == 5
    both = s.runs("on_a_and_b")
    assert len(both) == 1 and both[0][1] == "success", both
    assert s.lines("on_a_and_b")[0]["wall"] > s.lines("producer_b")[0]["wall"]  # only once b had succeeded too
    consumed = s.sql("SELECT e.source_dag_id FROM asset_consumed c JOIN asset_event e ON e.seq = c.seq "
                     "WHERE c.dag_id = 'on_a_and_b'")
    assert Counter(r[0] for r in consumed)["producer_b"] == 1 and Counter(r[0] for r in consumed)["producer_a"] >= 1
    timed = s.runs("on_a_or_time")
    assert sorted(r[0] for r in timed if r[0].startswith("scheduled__")) == \
        sorted(f"scheduled__{_iso(m)}" for m in minutes)
    triggered = [r for r in timed if r[0].startswith("dataset_triggered__")]
    assert len(triggered) == 4 and {r[1] for r in triggered} == {"success"}
    # past the DAG's end_date, as Airflow's verify_integrity does, those runs get no task instance (the
    # task's end_date is before their logical date): only the cron runs wrote lines
    assert s.sql("SELECT COUNT(*) FROM task_instance WHERE dag_id = 'on_a_or_time' AND run_id LIKE "
                 "'dataset_triggered__%'") == [(0,)]
    assert sorted(r["run_id"] for r in s.lines("on_a_or_time")) == sorted(r[0] for r in timed
                                                                         if r[0].startswith("scheduled__"))
    # a's later events wait for b again in on_a_and_b's queue; every other consumer's queue is empty
    assert s.sql("SELECT target_dag_id, uri FROM asset_queue") == [("on_a_and_b", "s3://bucket/a")]


def test_a_sigkill_between_the_producers_success_and_the_consumers_run_runs_it_once(tmp_path: Path) -> None:
    s = AssetSetup(tmp_path, gate=True)  # on_a's task waits for the gate: its first run holds its one slot
    with s.daemon() as d:
        # the first event's queue row lives a moment before its run: wait for the run and a later event's row
        wait_until(lambda: len(s.runs("on_a")) == 1
                   and s.sql("SELECT 1 FROM asset_queue WHERE target_dag_id = 'on_a'") != [], 60,
                   what="a producer event queued for on_a while its first run is running")
        d.kill()
        d.wait(10)
    assert [r[1] for r in s.runs("on_a")] == ["running"]  # the queued event has no run yet
    events_before = s.sql("SELECT COUNT(*) FROM asset_event WHERE uri = 's3://bucket/a'")[0][0]
    assert events_before >= 2
    s.gate.write_text("open")
    with s.daemon() as d:
        wait_until(lambda: s.sql("SELECT COUNT(*) FROM asset_event WHERE uri = 's3://bucket/a'") == [(4,)] and s.sql("SELECT * FROM asset_queue "
                   "WHERE target_dag_id = 'on_a'") == [] and all(r[1] == "success" for r in s.runs("on_a")), 60,
                   what="every event of a consumed by on_a")
        d.signal(signal.SIGTERM)
        assert d.wait(20) == 0, d.stderr
    runs = s.runs("on_a")
    assert len(runs) >= 2 and {r[1] for r in runs} == {"success"}, runs
    # every event of a went to exactly one run of on_a, and each run's task finished once
    seqs = s.sql("SELECT seq FROM asset_event WHERE uri = 's3://bucket/a' ORDER BY seq")
    consumed = s.sql("SELECT seq FROM asset_consumed WHERE dag_id = 'on_a' ORDER BY seq")
    assert consumed == seqs, (consumed, seqs)
    assert len(seqs) == 4  # one per producer success, none lost or doubled by the kill
    assert Counter(r["run_id"] for r in s.lines("on_a")) == Counter({r[0]: 1 for r in runs})
