"""The `lookup` stage against a real SQLite file, the suite's PostgreSQL and a real aiohttp API."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import threading
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from tests.data import BASE_MS, write_lines
from tests.http_peers import ThreadedServer
from tests.reference import iso
from tests.support import read_jsonl, run_cli, window_files, write_config

STORES = {f"s{i:03d}": (["north", "south", "east", "west"][i % 4], f"manager {i}") for i in range(40)}
UNKNOWN = ["s900", "s901"]


def _orders(n: int = 3000, seed: int = 4) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    stores = [*STORES, *UNKNOWN]
    return [{"id": i, "store": rnd.choice(stores), "ts": BASE_MS + i * 600, "total": round(rnd.uniform(1, 200), 2)}
            for i in range(n)]


def _by_region(orders: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[int, float]]:
    out: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0, 0.0])
    for o in orders:
        if o["store"] in STORES:
            acc = out[(iso(o["ts"] - o["ts"] % 300_000), STORES[o["store"]][0])]
            acc[0] += 1
            acc[1] += o["total"]
    return {k: (v[0], v[1]) for k, v in out.items()}


def _config(tmp_path: Path, lookup: dict[str, Any], *, aggregate: bool = True) -> Path:
    flow = "orders >> enrich >> per_region >> out" if aggregate else "orders >> enrich >> out"
    doc: dict[str, Any] = {
        "pipeline": {"name": f"lookup-{uuid.uuid4().hex[:6]}", "flow": flow},
        "window": {"size": "5m", "lateness": "1s"},
        "sources": {"orders": {"type": "file", "path": str(tmp_path / "orders.jsonl"), "batch_size": 500}},
        "stages": {"enrich": {"type": "lookup", "key": "store", "cache_size": 1000, "cache_ttl": "10m",
                              "retries": 0, **lookup}},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out"), "fsync": False}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state")},
    }
    if aggregate:
        doc["stages"]["per_region"] = {"type": "aggregate", "key": "region",
                                       "aggregates": {"orders": "count()", "revenue": "sum(total)"}}
    return write_config(tmp_path / "lookup.toml", doc)


def _sqlite_stores(path: Path) -> str:
    db = sqlite3.connect(path)
    db.execute("create table stores (store text primary key, region text, manager text)")
    db.executemany("insert into stores values (?, ?, ?)", [(k, r, m) for k, (r, m) in STORES.items()])
    db.commit()
    db.close()
    return f"sqlite:///{path}"


def _check_regions(tmp_path: Path, orders: list[dict[str, Any]]) -> None:
    got = {(r["window_start"], r["region"]): (r["orders"], r["revenue"])
           for rows in window_files(tmp_path / "out").values() for r in rows}
    want = _by_region(orders)
    assert set(got) == set(want)
    for k, (n, total) in want.items():
        assert got[k][0] == n and got[k][1] == pytest.approx(total), k


def test_sqlite_lookup_enriches_records_and_an_aggregate_keys_on_the_looked_up_field(tmp_path):
    orders = _orders()
    write_lines(tmp_path / "orders.jsonl", orders)
    dsn = _sqlite_stores(tmp_path / "stores.db")
    cfg = _config(tmp_path, {"from": "sqlite", "dsn": dsn, "on_missing": "dead_letter",
                             "query": "SELECT region, manager FROM stores WHERE store = :key"})
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 0, res.stderr
    _check_regions(tmp_path, orders)
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert sorted(d["value"]["id"] for d in dead) == [o["id"] for o in orders if o["store"] in UNKNOWN]
    assert {d["reason"] for d in dead} == {"lookup"} and all(d["stage"] == "enrich" for d in dead)
    assert "no sqlite row for store" in dead[0]["detail"]


@pytest.mark.parametrize("on_missing", ["keep", "drop"])
def test_on_missing_keep_or_drop(tmp_path, on_missing):
    orders = _orders(600)
    write_lines(tmp_path / "orders.jsonl", orders)
    dsn = _sqlite_stores(tmp_path / "stores.db")
    cfg = _config(tmp_path, {"from": "sqlite", "dsn": dsn, "on_missing": on_missing, "prefix": "store_",
                             "query": "SELECT region, manager FROM stores WHERE store = :key"}, aggregate=False)
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 0, res.stderr
    rows = {r["id"]: r for rows in window_files(tmp_path / "out").values() for r in rows}
    known = [o for o in orders if o["store"] in STORES]
    unknown = [o for o in orders if o["store"] in UNKNOWN]
    for o in known:
        assert rows[o["id"]]["store_region"] == STORES[o["store"]][0]
        assert rows[o["id"]]["store_manager"] == STORES[o["store"]][1]
    if on_missing == "keep":
        assert all(o["id"] in rows and "store_region" not in rows[o["id"]] for o in unknown)
    else:
        assert not any(o["id"] in rows for o in unknown)
    assert len(rows) == len(known) + (len(unknown) if on_missing == "keep" else 0)
    assert read_jsonl(tmp_path / "dead.jsonl") == []


def test_postgres_lookup_one_query_per_batch(tmp_path, postgres):
    table = f"stores_{uuid.uuid4().hex[:6]}"

    async def load() -> None:
        conn = await asyncpg.connect(postgres)
        await conn.execute(f"create table {table} (store text primary key, region text, manager text)")
        await conn.executemany(f"insert into {table} values ($1, $2, $3)", [(k, r, m) for k, (r, m) in STORES.items()])
        await conn.close()

    asyncio.run(load())
    orders = _orders()
    write_lines(tmp_path / "orders.jsonl", orders)
    cfg = _config(tmp_path, {"from": "postgres", "dsn": postgres, "on_missing": "dead_letter",
                             "query": f"SELECT region, manager FROM {table} WHERE store = :key"})
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 0, res.stderr
    _check_regions(tmp_path, orders)
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert len(dead) == sum(o["store"] in UNKNOWN for o in orders)


class StoreApi:
    def __init__(self, fail_first: int = 0):
        self.requests: list[str] = []
        self.answered: list[str] = []
        self.fail_first = fail_first
        self.lock = threading.Lock()

    def app(self) -> web.Application:
        async def store(request: web.Request) -> web.Response:
            key = request.match_info["key"]
            with self.lock:
                self.requests.append(key)
                failing = len(self.requests) <= self.fail_first
            if failing:
                return web.Response(status=503)
            with self.lock:
                self.answered.append(key)
            if key not in STORES:
                return web.Response(status=404)
            region, manager = STORES[key]
            return web.json_response({"region": region, "manager": manager})

        app = web.Application()
        app.router.add_get("/stores/{key}", store)
        return app


def test_http_lookup_asks_once_per_distinct_key_and_retries_a_failing_api(tmp_path):
    orders = _orders()
    write_lines(tmp_path / "orders.jsonl", orders)
    api = StoreApi(fail_first=3)
    with ThreadedServer(api.app) as server:
        cfg = _config(tmp_path, {"from": "http", "url": f"{server.url}/stores/{{key}}", "on_missing": "dead_letter",
                                 "retries": 3, "retry_delay": "50ms"})
        res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 0, res.stderr
    _check_regions(tmp_path, orders)
    distinct = {o["store"] for o in orders}
    assert sorted(api.answered) == sorted(distinct)  # each key asked once, across batches, after the retries
    assert len(api.requests) == len(distinct) + 3  # the three refused were asked again, nothing else


def test_a_lookup_that_keeps_failing_dead_letters_its_records_and_the_run_goes_on(tmp_path):
    orders = _orders(300)
    write_lines(tmp_path / "orders.jsonl", orders)
    # a store that cannot be reached halts the stage by default (tests/integration/test_lookup_edges.py);
    # on_failure = "dead_letter" asks for the records instead, each with its own key
    cfg = _config(tmp_path, {"from": "http", "url": "http://127.0.0.1:9/stores/{key}", "retries": 1,
                             "retry_delay": "10ms", "request_timeout": "1s", "on_failure": "dead_letter"},
                  aggregate=False)
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 0, res.stderr
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert len(dead) == len(orders)
    assert all(d["reason"] == "lookup" and d["detail"].startswith(f"lookup of store = {d['value']['store']!r} failed: "
                                                                   "ClientConnectorError") for d in dead)


def test_postgres_keys_of_another_kind_or_with_a_nul_fail_only_their_own_records(tmp_path, postgres):
    table = f"ids_{uuid.uuid4().hex[:6]}"

    async def load() -> None:
        conn = await asyncpg.connect(postgres)
        await conn.execute(f"create table {table} (id bigint primary key, label text)")
        await conn.executemany(f"insert into {table} values ($1, $2)", [(i, f"label {i}") for i in range(10)])
        await conn.close()

    asyncio.run(load())
    keys: list[Any] = [*range(12), "seven", "a\x00b", 2**70]
    records = [{"id": n, "store": keys[n % len(keys)], "ts": BASE_MS + n * 1000} for n in range(150)]
    (tmp_path / "orders.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))  # 2**70: not orjson
    cfg = _config(tmp_path, {"from": "postgres", "dsn": postgres, "on_missing": "dead_letter", "retries": 0,
                             "query": f"SELECT label FROM {table} WHERE id = :key"}, aggregate=False)
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 0, res.stderr
    rows = {r["id"]: r for rows in window_files(tmp_path / "out").values() for r in rows}
    want = {r["id"]: f"label {r['store']}" for r in records if type(r["store"]) is int and r["store"] < 10}
    assert {i: r["label"] for i, r in rows.items()} == want  # every int key answered, whatever the others did
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert len(dead) == len(records) - len(want)
    by_key = {d["value"]["store"] if isinstance(d["value"], dict) else None: d["detail"] for d in dead}
    assert "no postgres row" in by_key[10] and "no postgres row" in by_key["a\x00b"]
    assert "failed" in by_key["seven"]
