"""Running `rtstream run` on the DAG fixtures of tests/fixtures/dags_daemon, and checking what their
runs did against the intervals computed here, independently of rtstream's scheduler."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support import Daemon, read_jsonl, write_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dags_daemon"
TASKS = ["extract", "transform", "load"]


class TickerSetup:
    """The ticker DAG (every second from `start` to `end`, epoch seconds) in a folder of its own, or
    with the failing and broken DAG files beside it."""

    def __init__(self, tmp: Path, start: int, end: int, grace: float = 5.0, with_bad: bool = False):
        self.tmp, self.start, self.end = tmp, start, end
        self.dags = tmp / "dags"
        self.dags.mkdir(exist_ok=True)
        for name in ["ticker.py", *(["failing_dag.py", "broken_dag.py"] if with_bad else [])]:
            (self.dags / name).write_text((FIXTURES / name).read_text())
        self.out = tmp / "out.jsonl"
        self.db = tmp / "state" / "dag_runs.db"
        self.config = write_config(tmp / "dags.toml", {"dags": {"path": "dags"},
                                                       "daemon": {"state_dir": "state", "shutdown_grace": f"{grace}s"}})
        self.env = {"RTSTREAM_TICK_START": str(start), "RTSTREAM_TICK_END": str(end), "RTSTREAM_TICK_OUT": str(self.out)}

    def daemon(self) -> Daemon:
        return Daemon(self.config, self.tmp, env=self.env)

    def expected(self) -> list[str]:
        """Every logical date Airflow gives this DAG: start + k seconds, while it is not after end_date."""
        first = datetime.fromtimestamp(self.start, tz=UTC)
        return [(first + timedelta(seconds=k)).isoformat() for k in range(self.end - self.start + 1)]

    def lines(self) -> list[dict[str, Any]]:
        return read_jsonl(self.out)

    def runs(self, dag_id: str = "ticker") -> dict[str, str]:
        """logical date -> run state, as the daemon keeps them."""
        if not self.db.exists():
            return {}
        try:
            with contextlib.closing(sqlite3.connect(self.db, timeout=10)) as db:
                return dict(db.execute("SELECT logical_date, state FROM dag_run WHERE dag_id = ? "
                                       "ORDER BY logical_date", (dag_id,)).fetchall())
        except sqlite3.OperationalError:
            return {}  # the daemon is creating its tables

    def task_instances(self, dag_id: str) -> list[tuple[str, str, str, int]]:
        with contextlib.closing(sqlite3.connect(self.db, timeout=10)) as db:
            return db.execute("SELECT run_id, task_id, state, try_number FROM task_instance WHERE dag_id = ? "
                              "ORDER BY run_id, task_id", (dag_id,)).fetchall()

    def all_done(self) -> bool:
        runs = self.runs()
        return len(runs) == len(self.expected()) and all(s == "success" for s in runs.values())


def check_exact(setup: TickerSetup, interrupted_tries_allowed: bool) -> dict[str, int]:
    """Every interval ran exactly once, completely, with the XComs of its own run; returns a tally."""
    expected = setup.expected()
    runs = setup.runs()
    assert list(runs) == expected, f"runs kept {list(runs)} != intervals {expected}"
    assert set(runs.values()) == {"success"}, runs
    starts: dict[tuple[str, str], list[int]] = defaultdict(list)
    dones: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in setup.lines():
        if row["dag"] != "ticker":
            continue
        assert row["ld"] in expected, f"a run outside the schedule: {row}"
        assert row["run_id"] == f"scheduled__{row['ld']}" and row["start"] == row["ld"]
        end = datetime.fromisoformat(row["ld"]) + timedelta(seconds=1)
        assert row["end"] == end.isoformat(), row
        (starts if row["event"] == "start" else dones)[(row["ld"], row["task"])].append(row)  # type: ignore[arg-type]
    kept_tries = {(run_id, task): n for run_id, task, _, n in setup.task_instances("ticker")}
    retried = 0
    for ld in expected:
        for i, task in enumerate(TASKS):
            tries = [r["try"] for r in starts[(ld, task)]]
            if interrupted_tries_allowed:
                # a kill after a try began and before its callable wrote a line leaves that number out
                # (Airflow too counts a try from its start, and the next is one more): never one twice
                assert tries and tries == sorted(set(tries)), f"{ld} {task}: tries started {tries} (one ran twice?)"
            else:
                assert tries == [1], f"{ld} {task}: a try was interrupted by a SIGTERM: {tries}"
            assert kept_tries[(f"scheduled__{ld}", task)] == tries[-1], f"{ld} {task}: the store's try != {tries}"
            retried += tries[-1] - 1
            last = [d for d in dones[(ld, task)] if d["try"] == tries[-1]]
            assert len(last) == 1, f"{ld} {task}: its last try {tries[-1]} did not finish once: {last}"
            want = None if i == 0 else f"{TASKS[i - 1]}@{ld}"
            assert last[0]["got"] == want, f"{ld} {task}: XCom {last[0]['got']!r} != {want!r}"
    return {"runs": len(expected), "interrupted_tries": retried}


def wait_for_new_lines(setup: TickerSetup, before: int, timeout: float = 30.0) -> None:
    """Until the daemon has started a task (or has nothing left to run)."""
    deadline = time.monotonic() + timeout
    while len(setup.lines()) <= before and not setup.all_done():
        if time.monotonic() > deadline:
            raise AssertionError("the daemon started no task")
        time.sleep(0.05)
