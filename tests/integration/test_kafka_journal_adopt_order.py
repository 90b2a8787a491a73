"""Two Kafka sources adopt journaled marks only once both are restored (the Kafka twin of
tests/e2e/test_journal_adopt_order.py).

The state a SIGKILL leaves between saving a commit round's journal (rtstream.runtime.written_marks)
and the first source's commit, made deterministic: a clean stop checkpoints window 00:06 open in both
topics' partitions of a left interval join, then the journal is set to what the next round would
have saved (that window written, orders read one record past its checkpoint, payments nothing). Each
Kafka source is given its partitions by its own consumer: orders first with static assignment (in
start order), in either order with group assignment (every other seed). Adopted as each assignment arrived, orders saw none of payments' restored windows, dropped its
share of 00:06, and payments' restored share was written alone over the window: orders' lone rows of
it lost. The output after the restart is compared with an independent computation over every row."""

from __future__ import annotations

import asyncio
import pickle
import signal
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from rtstream.testing.peers.tansu import create_topic
from tests.data import BASE_MS
from tests.e2e.test_interval_left_join import closers, data, no_dead_letters, reference, written
from tests.kafka_helpers import produce, topic_name
from tests.support import LOOPS, Daemon, wait_until, write_config

CUT = BASE_MS + 7 * 60_000 + 10_000  # window 00:06 closes at 00:07 + upper + lateness: still open here
SIX = BASE_MS + 6 * 60_000
SIDES = ("orders", "payments")


def config(tmp_path: Path, bootstrap: str, topics: dict[str, str], group: str, assignment: str) -> Path:
    def source(name: str) -> dict[str, Any]:
        # static: each source's consumer takes its partition in its start, orders' before payments';
        # group: as each group's join completes, in either order
        return {"type": "kafka", "bootstrap_servers": bootstrap, "topics": [topics[name]], "group_id": f"{group}-{name}",
                "assignment": assignment, "start": "committed", "stop_at_end": False, "max_batch": 50,
                "consumer": {"fetch_max_wait_ms": 10, "session_timeout_ms": 6000, "heartbeat_interval_ms": 300}}

    doc = {
        "pipeline": {"name": "left", "flow": "[orders, payments] >> paid >> out"},
        "window": {"size": "1m", "lateness": "3s", "idle_timeout": "1h"},
        "sources": {name: source(name) for name in SIDES},
        "stages": {"paid": {"type": "interval_join", "left": "orders", "right": "payments", "on": "user_id",
                            "lower": "-5s", "upper": "20s", "how": "left"}},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out"), "fsync": False}},
        "state": {"checkpoint_interval": "300ms"},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms", "shutdown_grace": "10s"},
    }
    return write_config(tmp_path / f"left-{uuid.uuid4().hex[:6]}.toml", doc)


def checkpoints(state: Path) -> dict[str, tuple[int, bytes]]:
    """Source name -> its one partition's checkpoint (position, state)."""
    if not (state / "checkpoints.db").exists():
        return {}  # not before the daemon made it
    try:
        with sqlite3.connect(f"file:{state / 'checkpoints.db'}?mode=ro", uri=True) as db:
            rows = list(db.execute("select source, position, state from checkpoints"))
    except sqlite3.OperationalError:  # its table not there yet
        return {}
    return {scope.partition("@")[0]: (pos, blob) for scope, pos, blob in rows}  # scope: name@group


@pytest.mark.parametrize("seed", range(LOOPS))
def test_kafka_sources_adopt_journaled_marks_after_both_are_restored(tmp_path: Path, kafka: Any, seed: int) -> None:
    orders, payments = data(67 + seed)
    assignment = ("static", "group")[seed % 2]  # static fails on main every run; group when orders joins first
    want = reference(orders, payments)
    topics = {name: topic_name(name) for name in SIDES}
    for t in topics.values():
        asyncio.run(create_topic(kafka.bootstrap, t, 1))
    # each topic up to its first row at CUT (arrival is by time, within the lateness)
    o1 = orders[:next(i for i, o in enumerate(orders) if o["ts"] >= CUT)]
    p1 = payments[:next(i for i, p in enumerate(payments) if p["ts"] >= CUT)]
    asyncio.run(produce(kafka.bootstrap, topics["orders"], o1))
    cfg = config(tmp_path, kafka.bootstrap, topics, topic_name("g"), assignment)
    state = tmp_path / "state"
    with Daemon(cfg, tmp_path) as d:
        # orders wholly read before any payment: a pair is folded into the partition of the row that
        # made it, so every pair is payments' and every lone row orders' (window 00:06 held by both)
        wait_until(lambda: checkpoints(state).get("orders", (0,))[0] == len(o1) or d.proc.poll() is not None, 60,
                   what="orders checkpointed")
        asyncio.run(produce(kafka.bootstrap, topics["payments"], p1))
        wait_until(lambda: len(list((tmp_path / "out").glob("*"))) >= 6 or d.proc.poll() is not None, 60,
                   what="windows 00:00 to 00:05")
        wait_until(lambda: checkpoints(state).get("payments", (0,))[0] == len(p1) or d.proc.poll() is not None, 60,
                   what="payments checkpointed")  # the stop's checkpoint has all of them
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    saved = checkpoints(state)
    assert {s: p for s, (p, _) in saved.items()} == {"orders": len(o1), "payments": len(p1)}  # all read, checkpointed
    assert all(SIX in pickle.loads(blob)["panes"] for _, blob in saved.values())  # noqa: S301 - our own
    assert not (tmp_path / "out" / "2026-01-01T00-06-00Z.jsonl").exists()
    journals = list((state / "positions").glob("written-marks.*.json"))
    assert len(journals) == 1, "no journal of a round committing both sources"
    # what the next round would have journaled before a kill ahead of its first commit
    pairs = orjson.loads(journals[0].read_bytes())["pairs"]
    written_upto = BASE_MS + 7 * 60_000 + 1_200
    nxt = {"orders": len(o1) + 1, "payments": len(p1)}
    keys = {name: next(k for k in pairs if k.startswith(f"{name}\t")) for name in SIDES}
    for name, key in keys.items():
        pairs[key] = [pairs[key][0], written_upto, nxt[name]]
    journals[0].write_bytes(orjson.dumps({"pairs": pairs}))

    co, cp = closers()
    asyncio.run(produce(kafka.bootstrap, topics["orders"], [*orders[len(o1):], co]))
    asyncio.run(produce(kafka.bootstrap, topics["payments"], [*payments[len(p1):], cp]))
    with Daemon(cfg, tmp_path) as d:
        try:
            wait_until(lambda: len(written(tmp_path)) >= len(want) or d.proc.poll() is not None, 60,
                       what="every row")
        except AssertionError:
            got = written(tmp_path)
            raise AssertionError(f"{len(got)} rows of {len(want)}: missing {sorted(set(want) - set(got))[:10]}") from None
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    assert "orders: TopicPartition" in d.stderr and "below the mark saved before its commit" in d.stderr, \
        d.stderr[-3000:]
    got = written(tmp_path)
    assert got == want, f"{len(got)} rows of {len(want)}: missing {sorted(set(want) - set(got))[:10]}"
    no_dead_letters(tmp_path)
