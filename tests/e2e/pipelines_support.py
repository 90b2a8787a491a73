"""Two pipelines and three DAGs in one `rtstream run`, on the test broker: `clicks` (4 partitions) feeds the
`per_window` DAG through a `dag` sink, `orders` (2 partitions) posts to an HTTP receiver the test starts
and stops; `always_fails` fails each run and `exits` calls sys.exit(3). What each did is checked
against windows computed here from the events alone."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition

from rtstream.testing.peers.ports import free_port
from tests.data import make_events
from tests.kafka_helpers import count_per_partition, new_topics, produce
from tests.reference import tumbling_truth
from tests.support import Daemon, write_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FAST_CONSUMER = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300, "fetch_max_wait_ms": 10}


class Receiver:
    """The HTTP destination of `orders`: a request's rows kept by its idempotency key (a retry replaces)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s  # each request takes this long: a slow destination
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.lock = threading.Lock()

    def app(self) -> web.Application:
        app = web.Application()

        async def hook(request: web.Request) -> web.Response:
            rows = await request.json()
            await asyncio.sleep(self.delay_s)
            with self.lock:
                self.rows[request.headers["Idempotency-Key"]] = rows
            return web.Response(status=204)

        app.router.add_post("/hook", hook)
        return app

    def results(self) -> dict[tuple[str, str], int]:
        with self.lock:
            return {(r["window_start"], r["user_id"]): r["n"] for rows in self.rows.values() for r in rows}


async def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        return {p: await c.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await c.stop()


class Topic:
    def __init__(self, bootstrap: str, partitions: int, seed: int, events: int = 1200, span_s: int = 300):
        self.bootstrap, self.partitions = bootstrap, partitions
        self.name, _, self.group = new_topics(bootstrap, partitions)
        self.events = make_events(events, span_s=span_s, seed=seed)
        asyncio.run(produce(bootstrap, self.name, self.events, timestamp_field="ts"))
        self.ends = asyncio.run(count_per_partition(bootstrap, self.name, partitions, idle_s=0.5))

    def committed(self) -> dict[int, int | None]:
        return asyncio.run(committed(self.bootstrap, self.group, self.name, self.partitions))

    def source(self, stop_at_end: bool, max_batch: int = 5000) -> dict[str, Any]:
        return {"type": "kafka", "bootstrap_servers": self.bootstrap, "topics": [self.name], "group_id": self.group,
                "stop_at_end": stop_at_end, "consumer": FAST_CONSUMER, "max_batch": max_batch}

    def truth(self, key: str = "user_id") -> dict[tuple[str, str], int]:
        return {k: v["events"] for k, v in tumbling_truth(self.events, 60, key).items()}


class TwoPipelines:
    def __init__(self, tmp: Path, bootstrap: str, stop_at_end: bool = True, grace: str = "10s",
                 slow_s: float = 0.0):
        self.tmp = tmp
        self.clicks = Topic(bootstrap, 4, seed=31)
        self.orders = Topic(bootstrap, 2, seed=32)
        dags = tmp / "dags"
        dags.mkdir(exist_ok=True)
        shutil.copy(FIXTURES / "dag_sink" / "per_window.py", dags / "per_window.py")
        shutil.copy(FIXTURES / "dags_daemon" / "failing_dag.py", dags / "failing_dag.py")
        self.out = tmp / "out"
        self.out.mkdir(exist_ok=True)
        self.ticks = tmp / "ticks.jsonl"
        self.env = {"RTSTREAM_WINDOW_OUT": str(self.out), "RTSTREAM_TICK_START": str(int(time.time())),
                    "RTSTREAM_TICK_OUT": str(self.ticks), "SLOW_S": str(slow_s)}
        self.port, self.admin = free_port(), free_port()
        self.receiver = Receiver(slow_s)
        window = {"size": "1m", "time": "source", "lateness": "10s", "idle_timeout": "2s"}
        batch = 20 if slow_s else 5000  # small batches: the sources are held back batch by batch
        per_user = {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}}
        self.config = write_config(tmp / "many.toml", {
            "daemon": {"state_dir": "state", "commit_interval": "200ms", "shutdown_grace": grace,
                       # slow sinks hold the sources back: a stop finds windows open, closed and in flight
                       **({"queue_size": 1, "flush_queue_size": 1} if slow_s else {})},
            "admin": {"listen": f"127.0.0.1:{self.admin}"},
            "dags": {"path": "dags"},
            "pipelines": {
                "clicks": {"flow": "events >> per_user >> to_dag", "window": window,
                           "sources": {"events": self.clicks.source(stop_at_end, batch)},
                           "stages": {"per_user": {**per_user, "aggregates": {"events": "count()"}}},
                           "sinks": {"to_dag": {"type": "dag", "dag": "per_window", "retry_delay": "200ms",
                                                "max_retry_delay": "500ms"}}},
                "orders": {"flow": "events >> per_user >> hook", "window": window,
                           "sources": {"events": self.orders.source(stop_at_end, batch)},
                           "stages": {"per_user": per_user},
                           "sinks": {"hook": {"type": "http", "url": f"http://127.0.0.1:{self.port}/hook",
                                              "request_timeout": "1s", "retry_delay": "100ms",
                                              "max_retry_delay": "500ms"}}},
            },
        })

    def daemon(self) -> Daemon:
        return Daemon(self.config, self.tmp, env=self.env)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}{path}", timeout=5) as resp:
            body = resp.read()
        return orjson.loads(body) if path.startswith("/api") else body.decode()

    def status(self) -> dict[str, Any] | None:
        try:
            return self.get("/api/status")  # type: ignore[no-any-return]
        except OSError:
            return None

    def row(self, name: str) -> dict[str, Any]:
        st = self.status() or {}
        return next((p for p in st.get("pipelines", []) if p["name"] == name), {})

    def dag_results(self) -> dict[tuple[str, str], int]:
        """(window start, user) -> events, from the files the per_window DAG's `store` task wrote."""
        out: dict[tuple[str, str], int] = {}
        for p in self.out.glob("*.json"):
            body = orjson.loads(p.read_bytes())
            for r in body["rows"]:
                key = (body["window_start"], r["user_id"])
                assert key not in out, f"{key} in two runs"
                out[key] = r["events"]
        return out


async def _records(bootstrap: str, topic: str, ends: dict[int, int]) -> dict[int, list[dict[str, Any]]]:
    """Each partition's records in offset order (decoded values), read without a group."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10)
    await c.start()
    try:
        parts = [TopicPartition(topic, p) for p in ends]
        c.assign(parts)
        await c.seek_to_beginning(*parts)
        out: dict[int, list[dict[str, Any]]] = {p: [] for p in ends}
        while any(len(out[p]) < n for p, n in ends.items()):
            for tp, msgs in (await c.getmany(timeout_ms=500)).items():
                out[tp.partition].extend(orjson.loads(m.value) for m in msgs)
        return out
    finally:
        await c.stop()


def check_commits_at_sink_positions(topic: Topic, written: set[tuple[str, str]]) -> dict[int, int]:
    """Every record before a partition's commit is in a (window, user) row the sinks wrote, and the record
    at the commit (the first not committed) is in a window they had not written: the commit is exactly
    where the sinks are. `written`: (window start as ISO with offset, user). Returns the commits."""
    commits = {p: c or 0 for p, c in topic.committed().items()}
    records = asyncio.run(_records(topic.bootstrap, topic.name, topic.ends))
    windows_written = {w for w, _ in written}
    for p, rows in records.items():
        for e in rows[:commits[p]]:
            key = (_start(e["ts"]), e["user_id"])
            assert key in written, f"partition {p}: {key} is before the commit {commits[p]} but was not written"
        if commits[p] < len(rows):
            nxt = _start(rows[commits[p]]["ts"])
            assert nxt not in windows_written, f"partition {p}: commit {commits[p]} is behind the written window {nxt}"
    return commits


def _start(ts_ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp((ts_ms // 60_000) * 60, tz=UTC).isoformat()
