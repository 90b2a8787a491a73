"""The processes and peers of a scenario: replicas of the real daemon, the broker (kept on disk when
it is to be restarted), the HTTP receiver the http sink writes to, and a client for HTTP ingest."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from rtstream.testing.peers.ports import free_port, terminate, wait_for_port
from rtstream.testing.peers.tansu import tansu_binary
from tests.faults.harness.proc import Process
from tests.http_peers import ThreadedServer
from tests.support import Daemon


class S3Store:
    """One moto_server for the whole process: Tansu's s3:// storage survives a broker restart,
    its memory:// storage does not."""

    _proc: subprocess.Popen[bytes] | None = None
    _port = 0

    @classmethod
    def available(cls) -> bool:
        return shutil.which("moto_server") is not None

    @classmethod
    def endpoint(cls) -> str:
        if cls._proc is None or cls._proc.poll() is not None:
            cls._port = free_port()
            cls._proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(cls._port)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            atexit.register(cls.stop)
            wait_for_port(cls._port)
        return f"http://127.0.0.1:{cls._port}"

    @classmethod
    def stop(cls) -> None:
        if cls._proc is not None and cls._proc.poll() is None:
            cls._proc.terminate()
            cls._proc.wait(10)
        cls._proc = None

    @classmethod
    def bucket(cls, name: str) -> str:
        req = urllib.request.Request(f"{cls.endpoint()}/{name}", method="PUT")
        with urllib.request.urlopen(req, timeout=10):
            pass
        return f"s3://{name}/"


class Broker:
    """Tansu on a free port; with `persistent`, on S3 storage so that a restart keeps the data."""

    def __init__(self, workdir: Path, persistent: bool, bucket: str):
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log = workdir / "tansu.log"
        self.env = dict(os.environ)
        self.storage = "memory://tansu/"
        if persistent:
            self.storage = S3Store.bucket(bucket)
            self.env.update(AWS_ACCESS_KEY_ID="harness", AWS_SECRET_ACCESS_KEY="harness", AWS_DEFAULT_REGION="us-east-1",
                            AWS_ENDPOINT=S3Store.endpoint(), AWS_ALLOW_HTTP="true")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        url = f"tcp://127.0.0.1:{self.port}"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(tansu_binary()), "broker", "--listener-url", url,
                                          "--advertised-listener-url", url, "--storage-engine", self.storage],
                                         stdout=log, stderr=subprocess.STDOUT, env=self.env)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None


class Receiver:
    """The http sink's peer. Like a receiver that drops repeats, it keeps the first body per
    Idempotency-Key; a key sent again with other rows is noted as a conflict. Without `dedupe` it
    keeps every body (a receiver that upserts rows). It can be down (not listening) or slow (each
    answer delayed)."""

    def __init__(self, dedupe: bool = True) -> None:
        self.dedupe = dedupe
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.conflicts: list[str] = []
        self.delay_s = 0.0
        self.lock = threading.Lock()
        self.server: ThreadedServer | None = None

    def app(self) -> web.Application:
        import asyncio

        async def hook(request: web.Request) -> web.Response:
            rows = await request.json()
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            key = request.headers["Idempotency-Key"]
            with self.lock:
                if not self.dedupe:
                    self.rows[f"{key}#{len(self.rows)}"] = rows
                elif key not in self.rows:
                    self.rows[key] = rows
                elif _canon(self.rows[key]) != _canon(rows):
                    self.conflicts.append(key)
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", hook)
        return app

    def up(self) -> None:
        if self.server is None:
            self.server = ThreadedServer(self.app, port=self.port).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def _canon(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(tuple(sorted((k, str(v)) for k, v in r.items())) for r in rows)


class Replica:
    """One replica: its own state_dir, dead-letter file and file-sink folder, kept across restarts."""

    def __init__(self, index: int, config: Path, workdir: Path):
        self.index = index
        self.config = config
        self.workdir = workdir
        self.daemon: Daemon | None = None
        self.starts = 0
        self.exits: list[int | None] = []  # exit codes of the runs that ended (None: SIGKILLed)

    def start(self) -> None:
        self.daemon = Process(self.config, self.workdir)
        self.starts += 1

    @property
    def running(self) -> bool:
        return self.daemon is not None and self.daemon.proc.poll() is None

    def kill(self) -> None:
        if self.daemon is not None:
            self.daemon.kill()
            self.exits.append(None)
            self.daemon = None

    def terminate(self, timeout: float = 30) -> int:
        assert self.daemon is not None
        self.daemon.signal(signal.SIGTERM)
        return self.reap(timeout)

    def reap(self, timeout: float) -> int:
        assert self.daemon is not None
        try:
            code = self.daemon.wait(timeout)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            code = -9
        self.exits.append(code)
        self.daemon = None
        return code

    def has_logged(self, text: str) -> bool:
        """Whether the current run's log holds `text`, anywhere in it."""
        return self.daemon is not None and text in self.daemon.stderr

    def stderr_tail(self, n: int = 2000) -> str:
        """The end of the last run's log."""
        logs = sorted(self.workdir.glob("daemon-*.err"), key=lambda p: p.stat().st_mtime)
        return logs[-1].read_text(errors="replace")[-n:] if logs else ""


def post(url: str, body: bytes, timeout: float = 30) -> int:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/x-ndjson"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def post_until_answered(url: str, body: bytes, alive: Callable[[], bool], deadline_s: float = 60) -> int:
    """POST until the daemon answers (it may be restarting); 503 (spool full) is tried again. -1 when
    the daemon is gone for good."""
    end = time.monotonic() + deadline_s
    while True:
        if not alive():
            return -1
        try:
            status = post(url, body)
            if status != 503:
                return status
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > end:
            raise TimeoutError(f"ingest at {url} did not answer within {deadline_s}s")
        time.sleep(0.1)
