"""The real `rtstream run --dags DIR` with an admin server, over the DAGs of tests/fixtures/dags_trigger,
and what their triggered runs did (the tasks' own lines, and the run store read with sqlite3)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from rtstream.testing.peers.ports import free_port
from tests.e2e.dag_grid_support import TOKEN, call
from tests.support import ROOT, Daemon, read_jsonl, rtstream_cmd, wait_until, write_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dags_trigger"
TASKS = ["first", "slow", "last"]


class TriggerSetup:
    def __init__(self, tmp: Path, files: tuple[str, ...] = ("triggered.py",), token: str | None = TOKEN):
        self.tmp = tmp
        self.dags = tmp / "dags"
        self.dags.mkdir(exist_ok=True)
        for name in files:
            (self.dags / name).write_text((FIXTURES / name).read_text())
        self.out, self.release = tmp / "ran.jsonl", tmp / "release"
        self.db = tmp / "state" / "dag_runs.db"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        admin: dict[str, Any] = {"listen": f"127.0.0.1:{self.port}", **({"token": token} if token else {})}
        self.config = write_config(tmp / "dags.toml", {"daemon": {"state_dir": "state", "shutdown_grace": "3s"},
                                                       "admin": admin})
        self.env = {"RTSTREAM_TRIG_OUT": str(self.out), "RTSTREAM_TRIG_RELEASE": str(self.release)}

    def daemon(self) -> Daemon:
        return Daemon(self.config, self.tmp, "--dags", str(self.dags), env=self.env)

    def wait_up(self) -> None:
        def up() -> bool:
            try:
                return call(self.base + "/api/dags")[0] == 200
            except OSError:
                return False
        wait_until(up, 60, what="the admin server answers")

    def trigger(self, dag_id: str, body: Any = None, token: str | None = TOKEN, raw: bytes | None = None) -> tuple[int, Any]:
        return call(f"{self.base}/api/dags/{dag_id}/dagRuns", token, body=body if raw is None else None,
                    raw=raw if raw is not None else (None if body is not None else b"{}"))

    def cli(self, *args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "RTSTREAM_ADMIN_TOKEN"}
        if token is not None:
            env["RTSTREAM_ADMIN_TOKEN"] = token
        return subprocess.run(rtstream_cmd("dags", "trigger", *args, "--admin", self.base), cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)

    def lines(self) -> list[dict[str, Any]]:
        return read_jsonl(self.out)

    def runs(self, dag_id: str = "triggered") -> list[tuple[str, str, str, str]]:
        """(run_id, logical_date, run_type, state) of every kept run."""
        if not self.db.exists():
            return []
        try:
            with contextlib.closing(sqlite3.connect(self.db, timeout=10)) as db:
                return db.execute("SELECT run_id, logical_date, run_type, state FROM dag_run WHERE dag_id = ? "
                                  "ORDER BY logical_date", (dag_id,)).fetchall()
        except sqlite3.OperationalError:
            return []

    def run_state(self, run_id: str, dag_id: str = "triggered") -> str | None:
        return next((r[3] for r in self.runs(dag_id) if r[0] == run_id), None)
