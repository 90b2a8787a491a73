"""`make demo`'s script: Kafka, PostgreSQL and S3 started without Docker, a producer, the pipeline and
the DAG in one daemon; rows reach PostgreSQL and S3, the status page answers, SIGINT stops it all with 0."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request

import orjson
import pytest

from rtstream.testing.peers.moto import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY
from rtstream.testing.peers.ports import free_port
from rtstream.testing.peers.postgres import pg_bindir
from tests.support import ROOT, wait_until

pytestmark = pytest.mark.skipif(pg_bindir() is None, reason="PostgreSQL server binaries are not installed")
TOKEN = "demo-t0ken"


class Demo:
    def __init__(self, tmp_path, *extra: str):
        self.port = free_port()
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rtstream.testing.demo", "--admin", f"127.0.0.1:{self.port}", "--dir",
             str(tmp_path / "demo"), "--token", TOKEN, *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def said(self, pattern: str) -> re.Match[str] | None:
        return next((m for line in self.lines if (m := re.search(pattern, line))), None)

    def api(self, path: str):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return orjson.loads(resp.read())
        except OSError:
            return None


def _pg_rows(dsn: str) -> list[dict]:
    import asyncpg

    async def fetch():
        conn = await asyncpg.connect(dsn)
        try:
            if await conn.fetchval("SELECT to_regclass('public.clicks_per_user')") is None:
                return []
            return [dict(r) for r in await conn.fetch("SELECT user_id, events, window_start FROM clicks_per_user")]
        finally:
            await conn.close()

    return asyncio.run(fetch())


def _s3_objects(endpoint: str) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY_ID,
                          aws_secret_access_key=SECRET_ACCESS_KEY)
    return [o["Key"] for o in client.list_objects_v2(Bucket="rtstream-demo").get("Contents", [])]


def _listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def test_demo_rows_reach_postgres_and_s3_the_page_answers_and_sigint_exits_0(tmp_path):
    demo = Demo(tmp_path, "--for", "3m")  # a cap: the test ends it with SIGINT long before
    try:
        peers = wait_until(lambda: demo.said(r"Kafka on (\S+), PostgreSQL on (\S+), S3 on (\S+)"), 90,
                           what="the peers' addresses")
        kafka, dsn, s3 = peers.groups()
        rows = wait_until(lambda: _pg_rows(dsn), 90, interval=1, what="rows in PostgreSQL")
        assert all(re.fullmatch(r"u\d+", r["user_id"]) and r["events"] >= 1 for r in rows)
        keys = wait_until(lambda: _s3_objects(s3), 30, interval=1, what="objects in S3")
        assert all(k.startswith("clicks_per_user/") for k in keys)
        status = wait_until(lambda: (s := demo.api("/api/status")) and s["windows_flushed"] >= 1 and s, 30,
                            what="the status page's figures")
        assert status["pipeline"] == "demo" and status["flow"]["sinks"] == ["warehouse", "lake"]
        with urllib.request.urlopen(f"http://127.0.0.1:{demo.port}/", timeout=5) as page:
            assert page.status == 200 and b"<title>rtstream</title>" in page.read()
        dags = wait_until(lambda: (d := demo.api("/api/dags")) and d["dags"] and d, 30, what="the DAG")
        assert [d["dag_id"] for d in dags["dags"]] == ["clicks_each_minute"]
        demo.proc.send_signal(signal.SIGINT)
        assert demo.proc.wait(60) == 0, "\n".join(demo.lines[-30:])
    finally:
        if demo.proc.poll() is None:
            demo.proc.kill()
    summary = wait_until(lambda: demo.said(r"(\d+) clicks produced; (\d+) rows in PostgreSQL's clicks_per_user, "
                                           r"(\d+) objects in s3://rtstream-demo; the daemon exited 0"), 5,
                         what="the summary")
    assert int(summary.group(1)) > 0 and int(summary.group(2)) >= len(rows) and int(summary.group(3)) >= len(keys)
    # everything it started is gone: the broker, PostgreSQL, S3 and the status page
    for address in (kafka, dsn.split("@")[1].split("/")[0], s3.split("//")[1], f"127.0.0.1:{demo.port}"):
        assert not _listening(address), address


def test_demo_for_a_while_ends_by_itself_with_0(tmp_path):
    demo = Demo(tmp_path, "--for", "15s")
    try:
        assert demo.proc.wait(120) == 0, "\n".join(demo.lines[-30:])
    finally:
        if demo.proc.poll() is None:
            demo.proc.kill()
    wait_until(lambda: demo.said(r"the daemon exited 0"), 5, what="the summary")
    assert demo.said(r"stops by itself after 15s")


def test_demo_refuses_a_duration_without_unit(tmp_path):
    out = subprocess.run([sys.executable, "-m", "rtstream.testing.demo", "--for", "20", "--dir", str(tmp_path / "d")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "demo: --for: a duration needs a unit" in out.stderr
    assert not (tmp_path / "d").exists()
