"""A window join of two Kafka topics with the real daemon: a SIGKILL in the middle of a join's window,
then a restart, gives the same rows as an uninterrupted run and as a plain reference computation."""

from __future__ import annotations

import asyncio
import random
import signal
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from rtstream.testing.peers.tansu import create_topic
from tests.data import BASE_MS
from tests.integration.test_kafka import checkpointed
from tests.kafka_helpers import QUICK_STATIC, produce, topic_name
from tests.reference import iso
from tests.support import Daemon, read_jsonl, run_cli, status, wait_until, window_files, write_config

MIN = 60_000
LATENESS = 5_000
CLOSER = "zz-closer"


def data(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Orders and payments over four one-minute windows, each topic in arrival order: shuffled within
    3 s (under the 5 s lateness), so nothing is late."""
    rnd = random.Random(seed)
    orders = [{"id": f"k{rnd.randrange(25)}", "ts": BASE_MS + rnd.randrange(4 * MIN), "amount": i} for i in range(400)]
    payments = [{"id": f"k{rnd.randrange(30)}", "ts": BASE_MS + rnd.randrange(4 * MIN), "paid": i, "amount": -i}
                for i in range(400)]

    def arrival(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for _, r in sorted(((r["ts"] + rnd.randrange(3000), r) for r in rows), key=lambda p: p[0])]

    return arrival(orders), arrival(payments)


def reference(orders: list[dict[str, Any]], payments: list[dict[str, Any]]) -> dict[str, list[bytes]]:
    """Window start -> the joined rows (left join on id per one-minute window), as sorted JSON."""
    out: dict[str, list[bytes]] = {}
    for o in orders:
        w = o["ts"] - o["ts"] % MIN
        matches = [p for p in payments if p["id"] == o["id"] and p["ts"] - p["ts"] % MIN == w]
        rows = [{"id": o["id"], "left_ts": o["ts"], "left_amount": o["amount"], "right_ts": p["ts"],
                 "paid": p["paid"], "right_amount": p["amount"], "ts": max(o["ts"], p["ts"])} for p in matches] or [
            {"id": o["id"], "left_ts": o["ts"], "left_amount": o["amount"], "right_ts": None, "paid": None,
             "right_amount": None, "ts": o["ts"]}]  # one shape for every row (rtstream.engine.join_rows)
        out.setdefault(iso(w), []).extend(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in rows)
    return {w: sorted(rows) for w, rows in out.items()}


def written(folder: Path) -> dict[str, list[bytes]]:
    """What the file sink holds per window start (the closers' window left out), as sorted JSON."""
    got = {}
    for name, rows in window_files(folder).items():
        date, _, clock = name.removesuffix(".jsonl").partition("T")  # 2026-01-01T00-01-00Z
        start = f"{date}T{clock.replace('-', ':')}"
        lines = []
        for r in rows:
            assert r.pop("window_start") == start and r.pop("window_end") == iso(_ms(start) + MIN), r
            if r["id"] != CLOSER:
                lines.append(orjson.dumps(r, option=orjson.OPT_SORT_KEYS))
        if lines:
            got[start] = sorted(lines)
    return got


def _ms(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def config(tmp_path: Path, bootstrap: str, topics: tuple[str, str], group: str, out: Path, port: int,
           checkpoint: str | None) -> Path:
    def source(topic: str, suffix: str) -> dict[str, Any]:
        return {"type": "kafka", "bootstrap_servers": bootstrap, "topics": [topic], "group_id": f"{group}-{suffix}",
                "assignment": "static", "start": "committed", "stop_at_end": False, "max_batch": 40,
                "consumer": QUICK_STATIC}

    doc: dict[str, Any] = {
        "pipeline": {"name": "joins", "flow": "[orders, payments] >> match >> out"},
        "window": {"size": "1m", "lateness": "5s", "idle_timeout": "1h"},
        "sources": {"orders": source(topics[0], "o"), "payments": source(topics[1], "p")},
        "stages": {"match": {"type": "join", "left": "orders", "right": "payments", "on": "id", "how": "left"}},
        "sinks": {"out": {"type": "file", "path": str(out), "fsync": False}},
        "dead_letter": {"path": str(tmp_path / f"dead-{out.name}.jsonl")},
        "daemon": {"state_dir": str(tmp_path / f"state-{out.name}"), "commit_interval": "100ms",
                   "shutdown_grace": "10s"},
        "admin": {"listen": f"127.0.0.1:{port}"},
    }
    if checkpoint is not None:
        doc["state"] = {"checkpoint_interval": checkpoint}
    return write_config(tmp_path / f"joins-{uuid.uuid4().hex[:6]}.toml", doc)


def closers() -> list[dict[str, Any]]:
    return [{"id": CLOSER, "ts": BASE_MS + 60 * MIN, "amount": 0}]


@pytest.mark.parametrize("checkpoint", [None, "200ms"], ids=["replay-from-commit", "from-checkpoint"])
def test_sigkill_in_the_middle_of_a_join_window_gives_the_uninterrupted_output(tmp_path, kafka, checkpoint):
    from rtstream.testing.peers.ports import free_port

    seed = random.randrange(1 << 30)
    orders, payments = data(seed)
    truth = reference(orders, payments)
    topics = (topic_name("orders"), topic_name("payments"))
    for t in topics:
        asyncio.run(create_topic(kafka.bootstrap, t, 2))
    # part 1: up to 2.5 minutes in each topic; window 00:02 is open when the daemon is killed
    cut_o = [o for o in orders if o["ts"] < BASE_MS + 150_000]
    cut_p = [p for p in payments if p["ts"] < BASE_MS + 150_000]
    asyncio.run(produce(kafka.bootstrap, topics[0], cut_o, key="id"))
    asyncio.run(produce(kafka.bootstrap, topics[1], cut_p, key="id"))

    killed_out, port = tmp_path / "killed", free_port()
    cfg = config(tmp_path, kafka.bootstrap, topics, topic_name("g"), killed_out, port, checkpoint)
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: (status(port) or {}).get("records_in") == len(cut_o) + len(cut_p) or d.proc.poll(),
                   60, what=f"part 1 read (seed {seed})")
        wait_until(lambda: (killed_out / "2026-01-01T00-01-00Z.jsonl").exists(), 30, what="window 00:01 written")
        # the join's state in /metrics: the rows waiting in the open windows, per side and window
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        waiting = [line for line in metrics.splitlines() if line.startswith('rtstream_state_rows{stage="match"}')]
        assert waiting and float(waiting[0].split()[-1]) > 0, metrics[-2000:]
        if checkpoint is not None:  # a checkpoint covering all of part 1 (window 00:02's rows in it)
            store = tmp_path / "state-killed" / "checkpoints.db"
            wait_until(lambda: checkpointed(store) == len(cut_o) + len(cut_p), 30, what="a checkpoint of part 1")
        assert d.proc.poll() is None, d.stderr[-3000:]
        d.kill()  # window 00:02 holds rows of both sides, unwritten
    assert not (killed_out / "2026-01-01T00-02-00Z.jsonl").exists()

    rest_o = [o for o in orders if o["ts"] >= BASE_MS + 150_000]
    rest_p = [p for p in payments if p["ts"] >= BASE_MS + 150_000]
    asyncio.run(produce(kafka.bootstrap, topics[0], rest_o, key="id"))
    asyncio.run(produce(kafka.bootstrap, topics[1], rest_p, key="id"))
    for t in topics:  # a closer in every partition moves the watermark past the four windows
        for part in (0, 1):
            asyncio.run(produce(kafka.bootstrap, t, closers(), key=None, partition=part))
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: set(written(killed_out)) >= set(truth) or d.proc.poll() is not None, 60,
                   what=f"every window after the restart (seed {seed})")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]

    # the same input, uninterrupted, to the end
    whole_out = tmp_path / "whole"
    whole = config(tmp_path, kafka.bootstrap, topics, topic_name("g"), whole_out, free_port(), checkpoint)
    res = run_cli("run", "-c", str(whole), "--set", "sources.orders.stop_at_end=true",
                  "--set", "sources.payments.stop_at_end=true", timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]

    got, uninterrupted = written(killed_out), written(whole_out)
    assert uninterrupted == truth, f"seed {seed}"
    assert got == truth, f"seed {seed}: " + str({w: (len(got.get(w, [])), len(truth[w])) for w in truth})
    assert read_jsonl(tmp_path / "dead-killed.jsonl") == []  # nothing late, nothing refused
    if checkpoint is not None:
        assert "restored" in d.stderr, d.stderr[-3000:]  # the restart read on from the checkpoint
