"""A stream-table join and per-key state with the real daemon on Kafka (Tansu): the table comes from a
changelog with updates and tombstones, survives a SIGKILL in its checkpoint (the restart reads none of
the changelog again), and the enriched stream equals a plain reference; a keyed stage's running totals
equal a plain running sum."""

from __future__ import annotations

import asyncio
import random
import signal
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from rtstream.testing.peers.ports import free_port
from rtstream.testing.peers.tansu import create_topic
from tests.data import BASE_MS
from tests.integration.test_kafka import checkpointed
from tests.kafka_helpers import QUICK_STATIC, produce, produce_to_partitions, topic_name
from tests.reference import iso
from tests.support import Daemon, read_jsonl, run_cli, status, wait_until, window_files, write_config

MIN = 60_000
CLOSER = "zz-closer"


def source(bootstrap: str, topic: str, group: str) -> dict[str, Any]:
    return {"type": "kafka", "bootstrap_servers": bootstrap, "topics": [topic], "group_id": group,
            "assignment": "static", "start": "committed", "stop_at_end": False, "max_batch": 50,
            "consumer": QUICK_STATIC}


def config(tmp_path: Path, doc: dict[str, Any]) -> Path:
    base: dict[str, Any] = {
        "window": {"size": "1m", "lateness": "5s", "idle_timeout": "1h"},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out"), "fsync": False}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms", "shutdown_grace": "10s"},
    }
    return write_config(tmp_path / f"t-{uuid.uuid4().hex[:6]}.toml", {**doc, **base})


def rows_by_window(folder: Path) -> dict[str, list[bytes]]:
    out = {}
    for rows in window_files(folder).values():
        kept = [r for r in rows if CLOSER not in (r.get("user"), r.get("user_id"))]
        if kept:
            out[kept[0]["window_start"]] = sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in kept)
    return out


def test_table_join_from_a_changelog_survives_a_sigkill_in_its_checkpoint(tmp_path, kafka):
    rnd = random.Random()
    users_t, clicks_t = topic_name("users"), topic_name("clicks")
    asyncio.run(create_topic(kafka.bootstrap, users_t, 1))
    asyncio.run(create_topic(kafka.bootstrap, clicks_t, 2))
    table: dict[str, dict[str, Any]] = {}
    changelog: list[tuple[bytes | None, bytes | None, int | None]] = []
    for i in range(120):  # updates and deletes of 25 users
        u = f"u{rnd.randrange(25)}"
        if rnd.random() < 0.2:
            changelog.append((u.encode(), None, 0))  # a tombstone
            table.pop(u, None)
        else:
            row = {"user": u, "plan": f"p{i}", "ts": BASE_MS + i}
            changelog.append((u.encode(), orjson.dumps(row), 0))
            table[u] = row
    asyncio.run(produce_to_partitions(kafka.bootstrap, users_t, changelog))

    port = free_port()
    cfg = config(tmp_path, {
        "pipeline": {"name": "enrich", "flow": "[clicks, users] >> enrich >> out"},
        "sources": {"clicks": source(kafka.bootstrap, clicks_t, topic_name("gc")),
                    "users": source(kafka.bootstrap, users_t, topic_name("gu"))},
        "stages": {"enrich": {"type": "table_join", "stream": "clicks", "table": "users", "on": "user",
                              "how": "left"}},
        "state": {"checkpoint_interval": "200ms"},
        "admin": {"listen": f"127.0.0.1:{port}"},
    })
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: checkpointed(tmp_path / "state" / "checkpoints.db") == len(changelog), 60,
                   what="a checkpoint of the whole changelog")
        d.kill()

    clicks = [{"user": f"u{rnd.randrange(30)}", "ts": BASE_MS + MIN + rnd.randrange(3 * MIN), "n": i} for i in range(300)]
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: "restored" in d.stderr and status(port), 60, what="the restore")
        asyncio.run(produce(kafka.bootstrap, clicks_t, clicks, key="user"))
        closer = {"user": CLOSER, "ts": BASE_MS + 60 * MIN}
        for part in (0, 1):
            asyncio.run(produce(kafka.bootstrap, clicks_t, [closer], key=None, partition=part))
        asyncio.run(produce(kafka.bootstrap, users_t, [closer], key="user"))
        wait_until(lambda: (status(port) or {}).get("records_in") == len(clicks) + 3, 60, what="the clicks read")
        truth: dict[str, list[bytes]] = {}
        for c in clicks:
            w = iso(c["ts"] - c["ts"] % MIN)
            t = table.get(c["user"])
            t = t or {"plan": None, "ts": None}  # unmatched: the table's fields null, the same shape
            row = {"user": c["user"], "ts": c["ts"], "left_ts": c["ts"], "n": c["n"], "plan": t["plan"],
                   "right_ts": t["ts"]}
            row |= {"window_start": w, "window_end": iso(c["ts"] - c["ts"] % MIN + MIN)}
            truth.setdefault(w, []).append(orjson.dumps(row, option=orjson.OPT_SORT_KEYS))
        truth = {w: sorted(rows) for w, rows in truth.items()}
        wait_until(lambda: set(rows_by_window(tmp_path / "out")) >= set(truth), 60, what="every window")
        # the table came back from the checkpoint: none of its changelog was read again
        assert status(port)["records_in"] == len(clicks) + 3
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    assert rows_by_window(tmp_path / "out") == truth
    assert read_jsonl(tmp_path / "dead.jsonl") == []


def running_total(state, record):
    total = (state or 0) + record["amount"]
    return total, [{"user_id": record["user_id"], "ts": record["ts"], "total": total}]


def test_keyed_running_total_equals_a_plain_running_sum(tmp_path, kafka):
    rnd = random.Random()
    topic = topic_name("pay")
    asyncio.run(create_topic(kafka.bootstrap, topic, 2))
    events = [{"user_id": f"u{rnd.randrange(12)}", "ts": BASE_MS + i * 500, "amount": rnd.randrange(100)}
              for i in range(600)]
    asyncio.run(produce(kafka.bootstrap, topic, events))  # keyed by user: a user's records in one partition
    cfg = config(tmp_path, {
        "pipeline": {"name": "totals", "flow": "payments >> totals >> out"},
        "sources": {"payments": dict(source(kafka.bootstrap, topic, topic_name("g")), stop_at_end=True)},
        "stages": {"totals": {"type": "keyed", "key": "user_id",
                              "function": "tests.integration.test_kafka_table_join:running_total"}},
    })
    res = run_cli("run", "-c", str(cfg), timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    sums: dict[str, int] = {}
    want = []
    for e in events:
        sums[e["user_id"]] = sums.get(e["user_id"], 0) + e["amount"]
        want.append((e["user_id"], e["ts"], sums[e["user_id"]]))
    got = [(r["user_id"], r["ts"], r["total"]) for rows in window_files(tmp_path / "out").values() for r in rows]
    assert sorted(got) == sorted(want)


def commits_after(state_dir: Path, written: int) -> list[int] | None:
    """The offsets this host committed (its copy of the marks, rtstream/sources/kafka/host_marks.py)
    with a mark saying windows ending by `written` are written; None until every partition has one."""
    files = list((state_dir / "positions").glob("payments.*.marks.json"))
    if not files:
        return None
    try:
        doc = orjson.loads(files[0].read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    out = []
    for _, entries in sorted(doc.items()):
        done = [e[0] for e in entries if e[1] >= written]
        if not done:
            return None
        out.append(done[-1])
    return out if len(out) == 2 else None


@pytest.mark.parametrize("checkpoint", [None, "200ms"], ids=["replay-from-commit", "from-checkpoint"])
def test_keyed_state_survives_a_sigkill(tmp_path, kafka, checkpoint):
    rnd = random.Random()
    topic = topic_name("pay")
    asyncio.run(create_topic(kafka.bootstrap, topic, 2))
    # users u0-u5 in partition 0, u6-u11 in partition 1, taking turns: both partitions move the
    # watermark (12 users hashed by key had once left one partition without a late enough record)
    events = [{"user_id": f"u{(i % 2) * 6 + rnd.randrange(6)}", "ts": BASE_MS + i * 500, "amount": rnd.randrange(100)}
              for i in range(600)]

    def send(rows: list[dict[str, Any]]) -> None:
        for part in (0, 1):
            asyncio.run(produce(kafka.bootstrap, topic, [e for e in rows if int(e["user_id"][1:]) // 6 == part],
                                partition=part))

    send(events[:400])
    doc: dict[str, Any] = {
        "pipeline": {"name": "totals", "flow": "payments >> totals >> out"},
        "sources": {"payments": source(kafka.bootstrap, topic, topic_name("g"))},
        "stages": {"totals": {"type": "keyed", "key": "user_id",
                              "function": "tests.integration.test_kafka_table_join:running_total"}},
    }
    if checkpoint is not None:
        doc["state"] = {"checkpoint_interval": checkpoint}
    cfg = config(tmp_path, doc)
    with Daemon(cfg, tmp_path) as d:  # 400 events: windows 00:00 to 00:02 written, 00:03 open
        wait_until(lambda: (tmp_path / "out" / "2026-01-01T00-02-00Z.jsonl").exists() or d.proc.poll() is not None,
                   60, what="window 00:02 written")
        if checkpoint is not None:
            wait_until(lambda: checkpointed(tmp_path / "state" / "checkpoints.db") == 400, 30, what="a checkpoint")
        # a commit after window 00:02 was written (its mark says so), so the kill lands after one;
        # with a checkpoint holding the state, the commit follows the open window 00:03
        moved = (lambda: (c := commits_after(tmp_path / "state", BASE_MS + 3 * MIN)) and all(o > 0 for o in c)) \
            if checkpoint is not None else (lambda: commits_after(tmp_path / "state", BASE_MS + 3 * MIN))
        wait_until(moved, 30, what="a commit after 00:02")
        assert d.proc.poll() is None, d.stderr[-3000:]
        d.kill()
    if checkpoint is None:  # the state holds the commit at its first records: a replay rebuilds it
        assert commits_after(tmp_path / "state", BASE_MS + 3 * MIN) == [0, 0]
    send(events[400:])
    res = run_cli("run", "-c", str(cfg), "--set", "sources.payments.stop_at_end=true", timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    if checkpoint is not None:
        assert "restored" in res.stderr, res.stderr[-3000:]
    sums: dict[str, int] = {}
    want = []
    for e in events:
        sums[e["user_id"]] = sums.get(e["user_id"], 0) + e["amount"]
        want.append((e["user_id"], e["ts"], sums[e["user_id"]]))
    got = [(r["user_id"], r["ts"], r["total"]) for rows in window_files(tmp_path / "out").values() for r in rows]
    assert sorted(got) == sorted(want)
    assert read_jsonl(tmp_path / "dead.jsonl") == []
