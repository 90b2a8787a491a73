"""An Airflow 3 DAG with a Kafka AssetWatcher (tests/fixtures/asset_edges/kafka_watcher.py) runs unchanged
on rtstream's Kafka source: one run per window of messages, every message that triggers in exactly one
successful run (a run failing once and succeeding on retry), the offsets committed after the runs, a
message whose apply_function raises dead-lettered; across SIGKILLs at random moments too."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dag_sink_support import committed
from tests.kafka_helpers import count_per_partition, new_topics, produce
from tests.support import Daemon, read_jsonl, sigkill_at_random_moments, wait_until, write_config

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "asset_edges" / "kafka_watcher.py"
DAG_ID, GROUP = "example_kafka_watcher", "rtstream.example_kafka_watcher.kafka_watcher"
PARTITIONS = 4  # as dag_sink_support.committed reads them


class WatcherSetup:
    def __init__(self, tmp: Path, bootstrap: str, n: int = 200, per_second: int = 10, fail_first: bool = True):
        self.tmp, self.bootstrap = tmp, bootstrap
        self.topic, _, _ = new_topics(bootstrap, PARTITIONS)
        base = (int(time.time()) - 120) * 1000
        self.messages = [{"n": i, "k": i % 16, "ts": base + (i // per_second) * 1000 + (i % per_second) * 50,
                          **({"skip": True} if i % 7 == 3 else {}), **({"boom": True} if i == 13 else {}), **({"exit": True} if i == 29 else {})}
                         for i in range(n)]
        asyncio.run(produce(bootstrap, self.topic, self.messages, key="k", timestamp_field="ts"))
        self._ends: dict[int, int] = {}
        (tmp / "dags").mkdir(exist_ok=True)
        shutil.copy(FIXTURE, tmp / "dags" / FIXTURE.name)
        self.out = tmp / "out"
        self.out.mkdir(exist_ok=True)
        self.db = tmp / "state" / "dag_runs.db"
        conn = {"conn_type": "kafka", "extra": {"bootstrap.servers": bootstrap, "session.timeout.ms": 2000,
                                                "heartbeat.interval.ms": 300}}
        self.env = {"AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps(conn), "WATCH_TOPIC": self.topic,
                    "WATCH_OUT": str(self.out), **({"FAIL_FIRST": "1"} if fail_first else {})}
        self.config = write_config(tmp / "dags.toml", {"dags": {"path": "dags", "watcher_window": "1s"},
                                                       "daemon": {"state_dir": "state", "shutdown_grace": "10s"}})

    def daemon(self) -> Daemon:
        return Daemon(self.config, self.tmp, env=self.env)

    def expected(self) -> list[int]:
        return sorted(m["n"] for m in self.messages if not m.get("skip") and not m.get("boom") and not m.get("exit"))

    def runs(self) -> dict[str, str]:
        if not self.db.exists():
            return {}
        try:
            with contextlib.closing(sqlite3.connect(self.db, timeout=10)) as db:
                return dict(db.execute("SELECT run_id, state FROM dag_run WHERE dag_id = ?", (DAG_ID,)).fetchall())
        except sqlite3.OperationalError:
            return {}

    def files(self) -> dict[str, dict[str, Any]]:
        return {p.stem: json.loads(p.read_text()) for p in self.out.glob("*.json")}

    def committed(self) -> dict[int, int | None]:
        """The group's commits; an empty partition has none (0 here, as its end)."""
        return {p: 0 if c is None and self._ends.get(p) == 0 else c
                for p, c in asyncio.run(committed(self.bootstrap, GROUP, self.topic)).items()}

    def ends(self) -> dict[int, int]:
        self._ends = asyncio.run(count_per_partition(self.bootstrap, self.topic, PARTITIONS, idle_s=0.5))
        return self._ends

    def done(self) -> bool:
        runs = self.runs()
        got = sorted(n for run_id, f in self.files().items() if runs.get(run_id) == "success" for n in f["ns"])
        return got == self.expected() and set(runs.values()) == {"success"} and self.ends() == self.committed()

    def check(self) -> dict[str, int]:
        runs, files = self.runs(), self.files()
        assert set(runs.values()) == {"success"}, runs
        assert sorted(files) == sorted(runs), "a run's file is missing, or a file has no run"
        got = [n for f in files.values() for n in f["ns"]]
        assert sorted(got) == self.expected(), "every triggering message in exactly one successful run"
        for f in files.values():
            assert f["payloads"] == f["ns"] and f["from_trigger"], f  # triggering_asset_events, as Airflow's
        assert all(r.startswith("window__") for r in runs)
        tries = read_jsonl(self.out / "log.jsonl")
        assert {t["run_id"] for t in tries} == set(runs) and all(t["try"] >= 2 for t in tries)  # failed once first
        letters = list((self.tmp / "state" / "watchers").glob("*/dead_letters.jsonl"))
        assert len(letters) == 1, letters
        dead = read_jsonl(letters[0])
        # at least once, as every dead letter: a window replayed before its commit dead-letters it again
        assert {json.loads(d["value"]["value"])["n"] for d in dead} == {13, 29}, dead
        why = {json.loads(d["value"]["value"])["n"]: d["detail"] for d in dead}
        assert all(d["reason"] == "sink_rejected" and "apply_function of watcher 'kafka_watcher'" in d["detail"]
                   for d in dead), dead
        assert "ValueError: cannot use message 13" in why[13] and "SystemExit: message 29 asks to exit" in why[29]
        assert self.ends() == self.committed()
        return {"runs": len(runs), "messages": len(got)}


def finish(setup: WatcherSetup, timeout: float = 150) -> None:
    with setup.daemon() as d:
        wait_until(lambda: d.proc.poll() is not None or setup.done(), timeout, interval=0.5,
                   what="every triggering message in a successful run, every offset committed")
        assert d.proc.poll() is None, d.stderr
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr


def test_a_kafka_asset_watcher_dag_runs_once_per_window_of_messages(tmp_path, kafka):
    setup = WatcherSetup(tmp_path, kafka.bootstrap)
    finish(setup)
    tally = setup.check()
    assert tally["runs"] >= 15, tally  # 20 seconds of messages in 1s windows (a window of skips only runs nothing)


SEEDS = [int(s) for s in os.environ.get("RTSTREAM_WATCHER_SEEDS", "1").split(",")]


@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_at_random_moments_every_message_reaches_one_successful_run(tmp_path, kafka, seed):
    setup = WatcherSetup(tmp_path, kafka.bootstrap)
    rnd = random.Random(seed)
    kills = int(os.environ.get("RTSTREAM_WATCHER_KILLS", "4"))
    sigkill_at_random_moments(setup.daemon, rnd, kills, 1.0, 5.0)
    finish(setup)
    print(f"seed {seed}: kills {kills} {setup.check()}")
