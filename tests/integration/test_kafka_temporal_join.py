"""table_join in event time on Kafka (Tansu) with the real daemon: SIGKILL mid-state (stream rows
waiting for the table, several versions per key), restart, and the windows equal an uninterrupted
run's, that is tests/table_join_reference.py's as-of rows. With checkpoints (the state restored) and
without (the waiting rows and kept versions held the commits: replayed)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from rtstream.testing.peers.ports import free_port
from rtstream.testing.peers.tansu import create_topic
from tests.data import BASE_MS
from tests.integration.test_kafka_table_join import CLOSER, config, rows_by_window, source
from tests.kafka_helpers import produce, produce_to_partitions, topic_name
from tests.reference import iso
from tests.support import Daemon, read_jsonl, status, wait_until
from tests.table_join_reference import as_of

MIN = 60_000
SEEDS = [int(s) for s in os.environ.get("RTSTREAM_TEMPORAL_SEEDS", "1,2,3").split(",")]


def data(rnd: random.Random) -> tuple[list[Any], list[dict[str, Any]]]:
    changes: list[Any] = []
    for i in range(150):  # 5 minutes of changes of 20 users, some deletes
        u = f"u{rnd.randrange(20)}"
        changes.append(u if rnd.random() < 0.15 else {"user": u, "plan": f"p{i}", "ts": BASE_MS + i * 2_000})
    clicks = [{"user": f"u{rnd.randrange(25)}", "ts": BASE_MS + rnd.randrange(5 * MIN), "n": i} for i in range(400)]
    # arrival: in time order, each up to 3 s late (lateness is 5 s)
    clicks = [c for _, c in sorted(((c["ts"] + rnd.randrange(3_000), c) for c in clicks), key=lambda p: p[0])]
    return changes, clicks


def truth(changes: list[Any], clicks: list[dict[str, Any]]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for row in as_of(changes, clicks, "left", names=("plan",)):
        start = row["ts"] - row["ts"] % MIN
        row |= {"window_start": iso(start), "window_end": iso(start + MIN)}
        out.setdefault(iso(start), []).append(orjson.dumps(row, option=orjson.OPT_SORT_KEYS))
    return {w: sorted(rows) for w, rows in out.items()}


def differences(got: dict[str, list[bytes]], want: dict[str, list[bytes]]) -> str:
    out = []
    for w in sorted(set(got) | set(want)):
        g, x = set(got.get(w, [])), set(want.get(w, []))
        if g != x:
            out.append(f"{w}: {len(g)} rows, {len(x)} wanted; extra {sorted(g - x)[:3]}; missing {sorted(x - g)[:3]}")
    return "\n".join(out) + "\n"


def send_changes(bootstrap: str, topic: str, changes: list[Any]) -> None:
    asyncio.run(produce_to_partitions(bootstrap, topic, [
        (c.encode(), None, 0) if isinstance(c, str) else (c["user"].encode(), orjson.dumps(c), 0) for c in changes]))


@pytest.mark.parametrize("seed", SEEDS)
def test_a_sigkill_mid_state_and_a_restart_write_the_as_of_rows(tmp_path: Path, kafka, seed: int) -> None:  # type: ignore[no-untyped-def]
    rnd = random.Random(seed)
    checkpoints = seed % 3 != 0  # every third seed runs without checkpoints: the holds alone must do
    changes, clicks = data(rnd)
    users_t, clicks_t = topic_name("users"), topic_name("clicks")
    asyncio.run(create_topic(kafka.bootstrap, users_t, 1))
    asyncio.run(create_topic(kafka.bootstrap, clicks_t, 2))
    port = free_port()
    doc: dict[str, Any] = {
        "pipeline": {"name": "enrich", "flow": "[clicks, users] >> enrich >> out"},
        "sources": {"clicks": source(kafka.bootstrap, clicks_t, topic_name("gc")),
                    "users": source(kafka.bootstrap, users_t, topic_name("gu"))},
        "stages": {"enrich": {"type": "table_join", "stream": "clicks", "table": "users", "on": "user",
                              "how": "left"}},
        "admin": {"listen": f"127.0.0.1:{port}"},
    }
    if checkpoints:
        doc["state"] = {"checkpoint_interval": "200ms"}
    cfg = config(tmp_path, doc)
    # first half: the table to 2.5 min, the clicks to 3.5 min (those after the table's time wait)
    first = clicks[:sum(c["ts"] < BASE_MS + 210_000 for c in clicks)]  # a prefix, in arrival order
    send_changes(kafka.bootstrap, users_t, changes[:75])
    asyncio.run(produce(kafka.bootstrap, clicks_t, first, key="user"))
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: (status(port) or {}).get("records_in", 0) >= 75 + len(first) // 2, 60,
                   what="half the first part read")
        try:  # the kill lands at a random moment
            d.proc.wait(rnd.uniform(0.0, 1.5))
            raise AssertionError(f"the daemon ended on its own: {d.stderr[-2000:]}")
        except subprocess.TimeoutExpired:
            d.kill()
    written_before = rows_by_window(tmp_path / "out")
    with Daemon(cfg, tmp_path) as d:
        send_changes(kafka.bootstrap, users_t, changes[75:])
        asyncio.run(produce(kafka.bootstrap, clicks_t, clicks[len(first):], key="user"))
        closer = {"user": CLOSER, "ts": BASE_MS + 60 * MIN}
        for part in (0, 1):
            asyncio.run(produce(kafka.bootstrap, clicks_t, [closer], key=None, partition=part))
        asyncio.run(produce(kafka.bootstrap, users_t, [closer], key="user"))
        want = truth(changes, clicks)
        try:
            wait_until(lambda: rows_by_window(tmp_path / "out") == want, 90, what="every window as of its rows")
        except AssertionError:
            raise AssertionError(differences(rows_by_window(tmp_path / "out"), want) + d.stderr[-3000:]) from None
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    assert rows_by_window(tmp_path / "out") == want
    assert all(want[w] == rows for w, rows in written_before.items())  # nothing written wrong before the kill
    assert read_jsonl(tmp_path / "dead.jsonl") == []
