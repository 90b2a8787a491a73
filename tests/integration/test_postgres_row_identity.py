"""The PostgreSQL sink through the real daemon against a real server: rows without a key (a join's
pairs) replace their window whole, so every pair is kept and a replay leaves the same rows; a
`key_columns` two rows of a window share dead-letters them with why; count windows of one key that
share their start are each kept (upserted by `window_id`)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC

import asyncpg

from rtstream.model.window import iso_utc as iso
from tests.data import BASE_MS, write_lines
from tests.e2e.test_sink_row_identity import join_reference, orders_and_payments
from tests.support import read_jsonl, run_cli, write_config


async def fetch(dsn: str, sql: str) -> list[tuple]:
    conn = await asyncpg.connect(dsn)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


def spelled(ts) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def config(tmp_path, flow: str, stages: dict, table: str, count: bool = False, **sink) -> object:
    sources = {"orders": {"type": "file", "path": str(tmp_path / "orders.jsonl")}}
    if not count:
        sources["payments"] = {"type": "file", "path": str(tmp_path / "payments.jsonl")}
    doc = {
        "pipeline": {"name": "pgrows", "flow": flow},
        "window": {"type": "count", "size": 5} if count else {"size": "1m", "lateness": "0s"},
        "sources": sources,
        "stages": stages,
        "sinks": {"db": {"type": "postgres", "dsn": "${TEST_DATABASE_URL}", "table": table, **sink}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state")},
        **({"state": {"checkpoint_interval": "1s"}} if count else {}),
    }
    return write_config(tmp_path / "pg.toml", doc)


JOIN = {"match": {"type": "join", "left": "orders", "right": "payments", "on": "order_id"}}


def test_a_join_into_postgres_keeps_every_pair_and_a_replay_leaves_the_same_rows(tmp_path, postgres):
    orders, payments = orders_and_payments(4)
    write_lines(tmp_path / "orders.jsonl", orders)
    write_lines(tmp_path / "payments.jsonl", payments)
    want = join_reference(orders, payments)
    table = f"t_{uuid.uuid4().hex[:10]}"
    cfg = config(tmp_path, "[orders, payments] >> match >> db", JOIN, table)
    for run in range(2):  # the second run replays every window (a fresh state dir)
        res = run_cli("run", "-c", str(cfg), env={"TEST_DATABASE_URL": postgres}, timeout=120)
        assert res.returncode == 0, res.stderr[-3000:]
        rows = asyncio.run(fetch(postgres, f"select order_id, amount, paid, window_start from {table}"))
        assert Counter((o, a, p, spelled(ws)) for o, a, p, ws in rows) == want, f"run {run}"
        assert not read_jsonl(tmp_path / "dead.jsonl")
        (tmp_path / "state").rename(tmp_path / f"state-{run}")
    # no primary key (a key of one row per window lost the others); an index finds a window's rows to replace
    pk = asyncio.run(fetch(postgres, "select count(*) from information_schema.table_constraints "
                                     f"where table_name = '{table}' and constraint_type = 'PRIMARY KEY'"))
    assert pk == [(0,)]
    indexes = asyncio.run(fetch(postgres, f"select indexdef from pg_indexes where tablename = '{table}'"))
    assert len(indexes) == 1 and indexes[0][0].endswith('(window_start)'), indexes


def test_a_key_columns_shared_by_two_rows_dead_letters_them_in_postgres(tmp_path, postgres):
    orders, payments = orders_and_payments(5)
    write_lines(tmp_path / "orders.jsonl", orders)
    write_lines(tmp_path / "payments.jsonl", payments)
    want = join_reference(orders, payments)
    per_order = Counter((k[0], k[3]) for k in want.elements())
    table = f"t_{uuid.uuid4().hex[:10]}"
    cfg = config(tmp_path, "[orders, payments] >> match >> db", JOIN, table, key_columns=["window_start", "order_id"])
    res = run_cli("run", "-c", str(cfg), env={"TEST_DATABASE_URL": postgres}, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = asyncio.run(fetch(postgres, f"select order_id, amount, paid, window_start from {table}"))
    assert Counter((o, a, p, spelled(ws)) for o, a, p, ws in rows) == Counter(
        {k: n for k, n in want.items() if per_order[(k[0], k[3])] == 1})
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert Counter((d["value"]["order_id"], d["value"]["amount"], d["value"]["paid"], d["value"]["window_start"])
                   for d in dead) == Counter({k: n for k, n in want.items() if per_order[(k[0], k[3])] > 1})
    assert dead and all("rows of this window share the key (window_start, order_id)" in d["detail"] for d in dead)


def test_count_windows_of_one_key_sharing_their_start_are_each_kept_in_postgres(tmp_path, postgres):
    write_lines(tmp_path / "orders.jsonl", [{"user": "x", "ts": BASE_MS, "v": i} for i in range(12)])
    table = f"t_{uuid.uuid4().hex[:10]}"
    cfg = config(tmp_path, "orders >> per_user >> db",
                 {"per_user": {"type": "aggregate", "key": "user", "aggregates": {"n": "count()", "total": "sum(v)"}}},
                 table, count=True)
    for run in range(2):
        res = run_cli("run", "-c", str(cfg), env={"TEST_DATABASE_URL": postgres}, timeout=120)
        assert res.returncode == 0, res.stderr[-3000:]
        rows = asyncio.run(fetch(postgres, f"select \"user\", window_start, n, total from {table}"))
        start = iso(BASE_MS)
        assert Counter((u, spelled(ws), n, t) for u, ws, n, t in rows) == Counter(
            {("x", start, 5, 10): 1, ("x", start, 5, 35): 1, ("x", start, 2, 21): 1}), f"run {run}"
        (tmp_path / "state").rename(tmp_path / f"state-{run}")
