"""The real `rtstream run --dags DIR` with an admin server on a free loopback port, over the DAGs of
tests/fixtures/dags_grid, and the HTTP calls the grid's tests make."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from rtstream.testing.peers.ports import free_port
from tests.support import Daemon, read_jsonl, wait_until, write_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dags_grid"
TOKEN = "grid-t0ken-secret"
RUNS = 3


def call(url: str, token: str | None = TOKEN, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = raw
    if body is not None:
        data, headers["Content-Type"] = orjson.dumps(body), "application/json"
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read()
            return resp.status, orjson.loads(text) if resp.headers.get_content_type() == "application/json" else text
    except urllib.error.HTTPError as err:
        return err.code, orjson.loads(err.read())


class GridSetup:
    """RUNS finished intervals of each DAG, then nothing new: every run a test sees is one it can count."""

    def __init__(self, tmp: Path, token: str | None = TOKEN, admin_in_config: bool = True):
        self.tmp = tmp
        self.dags = tmp / "dags"
        self.dags.mkdir(exist_ok=True)
        (self.dags / "grid_dags.py").write_text((FIXTURES / "grid_dags.py").read_text())
        self.out, self.broken = tmp / "ran.jsonl", tmp / "broken"
        self.broken.touch()  # flaky's check fails until a test removes it
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        admin: dict[str, Any] = {"listen": f"127.0.0.1:{self.port}", **({"token": token} if token else {})}
        doc: dict[str, Any] = {"daemon": {"state_dir": "state", "shutdown_grace": "3s"}}
        self.extra = ["--dags", str(self.dags)]
        if admin_in_config:
            doc["admin"] = admin
        else:
            self.extra += ["--set", f'admin.listen="{admin["listen"]}"']
        self.config = write_config(tmp / "dags.toml", doc)
        now = int(time.time())
        self.env = {"RTSTREAM_GRID_START": str(now - RUNS - 1), "RTSTREAM_GRID_END": str(now - 2),
                    "RTSTREAM_GRID_OUT": str(self.out), "RTSTREAM_GRID_BROKEN": str(self.broken)}

    def daemon(self) -> Daemon:
        return Daemon(self.config, self.tmp, *self.extra, env=self.env)

    def ran(self) -> Counter[tuple[str, str, str]]:
        """(dag, task, run_id) -> tries that called the task's code."""
        return Counter((r["dag"], r["task"], r["run_id"]) for r in read_jsonl(self.out))

    def runs(self, dag_id: str, token: str | None = TOKEN) -> list[dict[str, Any]]:
        return call(f"{self.base}/api/dags/{dag_id}/runs?limit=50", token)[1]["runs"]

    def wait_settled(self, token: str | None = TOKEN) -> None:
        """Until the server answers and every run of both DAGs has finished."""
        def settled() -> bool:
            try:
                return all(len(rs := self.runs(d, token)) == RUNS and all(r["state"] != "running" for r in rs)
                           for d in ("grid_demo", "flaky"))
            except OSError:
                return False
        wait_until(settled, 60, what="every run of both DAGs finished")
