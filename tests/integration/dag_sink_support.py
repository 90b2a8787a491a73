"""A pipeline of 4 Kafka partitions whose `dag` sink runs tests/fixtures/dag_sink/per_window.py once per
window, and what its runs did, checked against windows computed here from the same events."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.data import make_events
from tests.kafka_helpers import count_per_partition, new_topics, produce
from tests.reference import tumbling_truth
from tests.support import Daemon, read_jsonl, write_config

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "dag_sink" / "per_window.py"
FAST_CONSUMER = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300, "fetch_max_wait_ms": 10}
PARTITIONS = 4


async def committed(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        return {p: await c.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
    finally:
        await c.stop()


class WindowDagSetup:
    def __init__(self, tmp: Path, bootstrap: str, seed: int = 11, events: int = 1500, span_s: int = 300,
                 fail_first: bool = False, slow_s: float = 0.0):
        self.tmp, self.bootstrap = tmp, bootstrap
        self.src, _, self.group = new_topics(bootstrap, PARTITIONS)
        self.events = make_events(events, span_s=span_s, seed=seed)
        asyncio.run(produce(bootstrap, self.src, self.events, timestamp_field="ts"))
        dags = tmp / "dags"
        dags.mkdir(exist_ok=True)
        shutil.copy(FIXTURE, dags / FIXTURE.name)
        self.out = tmp / "out"
        self.out.mkdir(exist_ok=True)
        self.db = tmp / "state" / "dag_runs.db"
        self.env = {"RTSTREAM_WINDOW_OUT": str(self.out), **({"FAIL_FIRST": "1"} if fail_first else {}),
                    "SLOW_S": str(slow_s)}
        self.config = write_config(tmp / "pipeline.toml", {
            "pipeline": {"name": "clicks", "flow": "events >> per_user >> to_dag"},
            "window": {"size": "1m", "time": "source", "lateness": "10s", "idle_timeout": "2s"},
            "sources": {"events": {"type": "kafka", "bootstrap_servers": bootstrap, "topics": [self.src],
                                   "group_id": self.group, "stop_at_end": True, "consumer": FAST_CONSUMER}},
            "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"events": "count()"}}},
            "sinks": {"to_dag": {"type": "dag", "dag": "per_window", "retry_delay": "200ms",
                                 "max_retry_delay": "500ms"}},
            "dags": {"path": "dags"},
            "dead_letter": {"path": str(tmp / "dead.jsonl")},
            "daemon": {"state_dir": "state", "commit_interval": "200ms", "shutdown_grace": "10s"},
        })

    def daemon(self) -> Daemon:
        return Daemon(self.config, self.tmp, env=self.env)

    def truth(self) -> dict[str, dict[str, int]]:
        """logical date (the window's start) -> {user_id: events}, computed from the events alone."""
        out: dict[str, dict[str, int]] = {}
        for (start, user), agg in tumbling_truth(self.events, 60, "user_id").items():
            ld = datetime.fromisoformat(start.replace("Z", "+00:00")).isoformat()
            out.setdefault(ld, {})[user] = agg["events"]
        return out

    def runs(self) -> list[tuple[str, str, str]]:
        """(logical date, run_id, state) of the DAG's runs, as the daemon keeps them."""
        if not self.db.exists():
            return []
        try:
            with contextlib.closing(sqlite3.connect(self.db, timeout=10)) as db:
                return db.execute("SELECT logical_date, run_id, state FROM dag_run WHERE dag_id = 'per_window' "
                                  "ORDER BY logical_date").fetchall()
        except sqlite3.OperationalError:
            return []  # the daemon is creating its tables

    def tries(self, task_id: str) -> list[tuple[str, str | None, int]]:
        if not self.db.exists():
            return []
        try:
            with contextlib.closing(sqlite3.connect(self.db, timeout=10)) as db:
                return db.execute("SELECT run_id, state, try_number FROM task_instance WHERE dag_id = 'per_window' "
                                  "AND task_id = ? ORDER BY run_id", (task_id,)).fetchall()
        except sqlite3.OperationalError:
            return []

    def committed(self) -> dict[int, int | None]:
        return asyncio.run(committed(self.bootstrap, self.group, self.src))

    def ends(self) -> dict[int, int]:
        return asyncio.run(count_per_partition(self.bootstrap, self.src, PARTITIONS, idle_s=0.5))

    def check_exactly_one_run_per_window(self) -> dict[str, Any]:
        """Every row of every window reached one successful run of that window, and only one. A window
        may be run in pieces (a partition's share closed apart, after a rebalance): then each piece is a
        run of its own at the window's start plus a microsecond per piece, and no row is in two pieces."""
        truth = self.truth()
        runs = self.runs()
        assert all(state == "success" for _, _, state in runs), runs
        by_run = {ld: run_id for ld, run_id, _ in runs}
        for ld, run_id in by_run.items():
            start = datetime.fromisoformat(ld).replace(microsecond=0).isoformat()
            piece = datetime.fromisoformat(ld).microsecond
            assert run_id == f"window__{start}" + (f"__{piece}" if piece else ""), (ld, run_id)
        files = {p.stem: orjson.loads(p.read_bytes()) for p in self.out.glob("*.json")}
        assert sorted(files) == sorted(by_run), (sorted(files), sorted(by_run))
        got: dict[str, dict[str, int]] = {}
        for ld, body in files.items():
            assert body["run_id"] == by_run[ld]
            start = datetime.fromisoformat(ld).replace(microsecond=0).isoformat()
            for r in body["rows"]:
                assert r["user_id"] not in got.get(start, {}), f"window {start}: {r['user_id']} in two runs"
                got.setdefault(start, {})[r["user_id"]] = r["events"]
        assert sorted(got) == sorted(truth), (sorted(got), sorted(truth))
        for start, want in truth.items():
            assert got[start] == want, f"window {start}: rows {got[start]} != {want}"
        stored_by: dict[str, set[str]] = {}
        for line in read_jsonl(self.out / "log.jsonl"):
            stored_by.setdefault(line["ld"], set()).add(line["run_id"])
        assert stored_by == {ld: {run_id} for ld, run_id in by_run.items()}, stored_by
        ends = self.ends()
        assert self.committed() == ends, (self.committed(), ends)
        return {"windows": len(truth), "runs": len(runs),
                "store_tries": sum(1 for _ in read_jsonl(self.out / "log.jsonl"))}
