"""The spooled sources (http_ingest, sql) keep the mark the engine hands them with a commit: a
SIGKILL right after the first commit that carries one (placed by tests/shims/kill_after_save) and a
restart skip the out-of-order records after the committed position whose window was written,
instead of writing that window again with only them. Compared with a computation over every record."""

from __future__ import annotations

import random
import signal
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from rtstream.testing.peers.ports import free_port
from tests.data import BASE_MS
from tests.e2e.test_multisource_kill import MIN, reference, shim_env, sink_rows
from tests.integration.test_http import AUTH, post
from tests.support import LOOPS, Daemon, wait_until, write_config


def events(rnd: random.Random) -> list[dict[str, Any]]:
    """00:00-00:05 is written once 00:07 is seen; the first record of 00:05 (where the commit stops:
    00:05 is still open) is followed by stragglers of 00:00, which are after the committed position."""
    at = sorted(rnd.randrange(0, 4 * MIN) for _ in range(rnd.randint(3, 12)))
    at.append(5 * MIN + 1000)
    at += [rnd.randrange(4 * MIN, 5 * MIN - 1000) for _ in range(rnd.randint(1, 3))]
    at += sorted(rnd.randrange(5 * MIN + 2000, 7 * MIN) for _ in range(rnd.randint(2, 8))) + [7 * MIN]
    return [{"user_id": f"u{rnd.randrange(3)}", "ts": BASE_MS + t, "amount": rnd.randint(1, 50)} for t in at]


CLOSER = {"user_id": "u0", "ts": BASE_MS + 11 * MIN, "amount": 1}  # posted after the restart: closes 00:05


def doc(tmp_path: Path, source: dict[str, Any]) -> dict[str, Any]:
    return {
        "pipeline": {"name": "spooled", "flow": "events >> per_user >> out"},
        "window": {"size": "5m", "lateness": "10s", "idle_timeout": "1h"},
        "sources": {"events": source},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id",
                                "aggregates": {"events": "count()", "spent": "sum(amount)"}}},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out"), "fsync": False}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms", "shutdown_grace": "10s"},
    }


def committed(tmp_path: Path) -> dict[str, Any]:
    return orjson.loads((tmp_path / "state" / "spool" / "events" / "committed").read_bytes())


def check(tmp_path: Path, recs: list[dict[str, Any]], before: dict[str, Any]) -> None:
    want = reference(recs, 5 * MIN, 5 * MIN, BASE_MS + 10 * MIN)
    got = sink_rows(tmp_path / "out")
    wrong = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
    assert not wrong, f"{len(wrong)} rows differ (got, want): {sorted(wrong.items())} after a commit of {before}"
    assert set(got) == set(want)
    dead = tmp_path / "dead.jsonl"
    # skipped as counted, not dead-lettered as late
    assert not dead.exists() or not dead.read_text().strip(), dead.read_text()[:2000]


def killed_commit(tmp_path: Path, d: Daemon) -> dict[str, Any]:
    assert d.wait(120) == -9, d.stderr[-3000:]  # killed by the shim, right after a marked commit
    before = committed(tmp_path)
    assert before["mark"] and before["mark"][0] >= BASE_MS + 5 * MIN, before  # 00:00 written, 00:05 open
    return before


@pytest.mark.parametrize("seed", range(LOOPS))
def test_http_ingest_killed_after_a_commit_keeps_its_mark(tmp_path: Path, seed: int) -> None:
    recs = events(random.Random(f"ingest:{seed}"))
    port = free_port()
    src = {"type": "http_ingest", "listen": f"127.0.0.1:{port}", "path": "/ingest", "token": "s3cret"}
    cfg = write_config(tmp_path / "ingest.toml", doc(tmp_path, src))
    url = f"http://127.0.0.1:{port}/ingest"
    ndjson = {**AUTH, "Content-Type": "application/x-ndjson"}
    with Daemon(cfg, tmp_path, env=shim_env()) as d:
        wait_until(lambda: "accepting POST" in d.stderr, 30, what="the ingest server")
        assert post(url, b"\n".join(map(orjson.dumps, recs)), ndjson)[0] == 202
        before = killed_commit(tmp_path, d)
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: "accepting POST" in d.stderr, 30, what="the ingest server")
        assert post(url, orjson.dumps(CLOSER), ndjson)[0] == 202
        wait_until(lambda: any(s == BASE_MS + 5 * MIN for s, _ in sink_rows(tmp_path / "out")), 60,
                   what="window 00:05")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    check(tmp_path, recs + [CLOSER], before)


@pytest.mark.parametrize("seed", range(LOOPS))
def test_sql_source_killed_after_a_commit_keeps_its_mark(tmp_path: Path, seed: int) -> None:
    recs = events(random.Random(f"sql:{seed}"))
    path = tmp_path / "events.db"

    def insert(rows: list[dict[str, Any]]) -> None:
        db = sqlite3.connect(path)
        db.execute("create table if not exists events (id integer primary key, user_id text, ts integer, amount integer)")
        db.executemany("insert into events (user_id, ts, amount) values (:user_id, :ts, :amount)", rows)
        db.commit()
        db.close()

    insert(recs)
    src = {"type": "sql", "dsn": f"sqlite:///{path}", "cursor_field": "id", "interval": "200ms",
           "query": "SELECT id, user_id, ts, amount FROM events WHERE id > :cursor ORDER BY id LIMIT 1000"}
    cfg = write_config(tmp_path / "sql.toml", doc(tmp_path, src))
    with Daemon(cfg, tmp_path, env=shim_env()) as d:
        before = killed_commit(tmp_path, d)
    insert([CLOSER])
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: any(s == BASE_MS + 5 * MIN for s, _ in sink_rows(tmp_path / "out")), 60,
                   what="window 00:05")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    check(tmp_path, recs + [CLOSER], before)
