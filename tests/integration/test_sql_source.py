"""The `sql` source against a real SQLite file and the suite's PostgreSQL, with the real daemon."""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.data import BASE_MS
from tests.reference import iso
from tests.support import Daemon, run_cli, wait_until, window_files, write_config

PAGE = 500


def _orders(first_id: int, n: int, seed: int) -> list[tuple[int, str, str, float]]:
    rnd = random.Random(seed)
    out = []
    for i in range(first_id, first_id + n):
        ts = BASE_MS + i * 700
        out.append((i, f"s{rnd.randrange(12):02d}", iso(ts - ts % 1000).replace("Z", ".000Z"), round(rnd.uniform(1, 99), 2)))
    return out


def _truth(rows: list[tuple[int, str, str, float]]) -> dict[tuple[str, str], tuple[int, float]]:
    out: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0, 0.0])
    for i, store, _, total in rows:
        ts = BASE_MS + i * 700
        acc = out[(iso(ts - ts % 300_000), store)]
        acc[0] += 1
        acc[1] += total
    return {k: (v[0], v[1]) for k, v in out.items()}


def _sqlite(path: Path, rows: list[tuple[int, str, str, float]]) -> str:
    db = sqlite3.connect(path)
    db.execute("create table if not exists orders (id integer primary key, store text, ts text, total real)")
    db.executemany("insert into orders values (?, ?, ?, ?)", rows)
    db.commit()
    db.close()
    return f"sqlite:///{path}"


def _config(tmp_path: Path, dsn: str, table: str = "orders", **source: Any) -> Path:
    doc = {
        "pipeline": {"name": "sql", "flow": "orders_db >> per_store >> out"},
        "window": {"size": "5m", "lateness": "1s", "idle_timeout": "1h"},
        "sources": {"orders_db": {"type": "sql", "dsn": dsn, "cursor_field": "id", "batch_size": 300,
                                  "query": f"SELECT id, store, ts, total FROM {table} WHERE id > :cursor "
                                           f"ORDER BY id LIMIT {PAGE}", **source}},
        "stages": {"per_store": {"type": "aggregate", "key": "store",
                                 "aggregates": {"orders": "count()", "revenue": "sum(total)"}}},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out"), "fsync": False}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms"},
    }
    return write_config(tmp_path / f"sql-{uuid.uuid4().hex[:6]}.toml", doc)


def _got(tmp_path: Path) -> dict[tuple[str, str], tuple[int, float]]:
    return {(r["window_start"], r["store"]): (r["orders"], r["revenue"])
            for rows in window_files(tmp_path / "out").values() for r in rows}


def _assert_equal(got: dict[Any, Any], want: dict[Any, Any]) -> None:
    assert set(got) == set(want), (len(got), len(want))
    for k, (n, total) in want.items():
        assert got[k][0] == n and got[k][1] == pytest.approx(total), k


def test_finite_sqlite_run_equals_the_reference(tmp_path):
    rows = _orders(1, 4200, seed=1)  # nine pages
    cfg = _config(tmp_path, _sqlite(tmp_path / "orders.db", rows), stop_at_end=True)
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 0, res.stderr
    assert "all sources finished: 4200 records read" in res.stderr
    _assert_equal(_got(tmp_path), _truth(rows))


def test_finite_postgres_run_equals_the_reference(tmp_path, postgres):
    table = f"orders_{uuid.uuid4().hex[:6]}"
    rows = _orders(1, 2600, seed=2)

    async def load() -> None:
        conn = await asyncpg.connect(postgres)
        await conn.execute(f"create table {table} (id bigint primary key, store text, ts timestamptz, total numeric)")
        await conn.executemany(f"insert into {table} values ($1, $2, $3::text::timestamptz, $4::text::numeric)",
                               [(i, s, ts, str(t)) for i, s, ts, t in rows])
        await conn.close()

    asyncio.run(load())
    cfg = _config(tmp_path, postgres, table=table, stop_at_end=True)
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 0, res.stderr
    _assert_equal(_got(tmp_path), _truth(rows))


def test_live_polls_pick_up_new_rows_and_a_sigkill_loses_and_repeats_nothing(tmp_path):
    first = _orders(1, 1500, seed=3)
    db = tmp_path / "orders.db"
    cfg = _config(tmp_path, _sqlite(db, first), interval="1s")
    spool = tmp_path / "state" / "spool" / "orders_db"
    with Daemon(cfg, tmp_path) as d:
        # every row spooled (the cursor reached the last id), then killed between polls
        wait_until(lambda: spool.exists() and any(b'"cursor":1500' in p.read_bytes() for p in spool.glob("*.log")),
                   30, what="the first rows spooled")
        d.kill()
    # Rows the spool already holds are gone from the table: the restart must not need to ask for them.
    con = sqlite3.connect(db)
    con.execute("delete from orders where id <= 1500")
    con.commit()
    con.close()
    later = _orders(1501, 1700, seed=4)
    _sqlite(db, later)
    closer = [(10_000_000, "closer", iso(BASE_MS + 86_400_000), 0.0)]  # far ahead: closes every window
    with Daemon(cfg, tmp_path) as d:
        _sqlite(db, closer)
        want = _truth([*first, *later])
        wait_until(lambda: len(set(_got(tmp_path)) & set(want)) >= len(want), 60, what="every window")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
    got = {k: v for k, v in _got(tmp_path).items() if k[1] != "closer"}
    _assert_equal(got, want)  # nothing lost, nothing counted twice


def test_a_query_without_the_cursor_is_refused(tmp_path):
    db = _sqlite(tmp_path / "orders.db", _orders(1, 10, seed=5))
    cfg = _config(tmp_path, db, query="SELECT id, store, ts, total FROM orders ORDER BY id")
    res = run_cli("validate", "-c", str(cfg))
    assert res.returncode == 2
    assert "query must use :cursor" in res.stderr and "Traceback" not in res.stderr


def test_a_relative_sqlite_dsn_is_beside_the_config(tmp_path):
    rows = _orders(1, 700, seed=6)
    (tmp_path / "data").mkdir()
    _sqlite(tmp_path / "data" / "orders.db", rows)
    cfg = _config(tmp_path, "sqlite:///data/orders.db", stop_at_end=True)
    res = run_cli("run", "-c", str(cfg))  # run from the repository root, not from tmp_path
    assert res.returncode == 0, res.stderr
    _assert_equal(_got(tmp_path), _truth(rows))
