"""Issue #24's lookup cases, through the real daemon: a reference store that goes down for a while
(case 3) halts the stage instead of dead-lettering good records; keys of different JSON types stay
apart (case 10); each dead letter names its own key (case 14)."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from rtstream.testing.peers.ports import free_port
from tests.data import BASE_MS, write_lines
from tests.http_peers import ThreadedServer
from tests.lookup_stores import LookupApi, LookupPostgres
from tests.support import Daemon, read_jsonl, run_cli, status, wait_until, window_files, write_config

OUTAGE_S = float(os.environ.get("RTSTREAM_LOOKUP_OUTAGE_S", "8"))
N = 900
REF = {f"s{i:04d}": {"region": f"r{i % 7}"} for i in range(N)}  # one key per record: every batch asks the store


def _records(lo: int, hi: int) -> list[dict[str, Any]]:
    return [{"id": i, "store": f"s{i:04d}", "ts": BASE_MS + i * 400} for i in range(lo, hi)]


def _doc(tmp_path: Path, lookup: dict[str, Any], admin_port: int, **policy: Any) -> dict[str, Any]:
    return {
        "pipeline": {"name": f"lk-{uuid.uuid4().hex[:6]}", "flow": "orders >> enrich >> out"},
        "window": {"size": "1m", "lateness": "1s", "idle_timeout": "1h"},
        "sources": {"orders": {"type": "file", "path": str(tmp_path / "orders.jsonl"), "follow": True,
                               "poll_interval": "50ms", "batch_size": 50}},
        "stages": {"enrich": {"type": "lookup", "cache_size": 10_000, "on_missing": "dead_letter",
                              "retries": 2, "retry_delay": "100ms", "max_retry_delay": "500ms", "timeout": "2s",
                              **lookup, **policy}},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out"), "fsync": False}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "200ms"},
        "admin": {"listen": f"127.0.0.1:{admin_port}"},
    }


def _committed(tmp_path: Path) -> int:
    doc = read_jsonl(tmp_path / "state" / "positions" / "orders.json")
    return int(doc[0]["position"]) if doc else 0


def _ids(tmp_path: Path) -> list[int]:
    return [r["id"] for rows in window_files(tmp_path / "out").values() for r in rows if r["id"] >= 0]


@pytest.mark.parametrize("kind", ["postgres", "http"])
def test_a_store_down_for_seconds_halts_the_lookup_then_every_record_arrives_once(tmp_path, kind):
    store: Any = LookupPostgres(REF) if kind == "postgres" else LookupApi(REF)
    src = tmp_path / "orders.jsonl"
    admin = free_port()
    with store:
        write_lines(src, _records(0, 300))
        cfg = write_config(tmp_path / "lk.toml", _doc(tmp_path, store.lookup_config("store"), admin))
        with Daemon(cfg, tmp_path) as d:
            wait_until(lambda: len(_ids(tmp_path)) >= 100, 60, what="the first windows written")
            wait_until(lambda: _committed(tmp_path) > 0, 30, what="a first commit")
            before = src.stat().st_size  # every record from here on waits for the store
            store.down()
            began = time.monotonic()
            write_lines(src, _records(300, 600), mode="ab")
            problems = wait_until(lambda: ((status(admin) or {}).get("problems") or {}).get("enrich"), 30,
                                  what="/api/status naming the halted lookup")
            assert problems.startswith("halted, retrying:"), problems
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - began)))  # the outage itself: nothing to wait on
            committed_during = _committed(tmp_path)
            assert committed_during <= before, (committed_during, before)
            assert read_jsonl(tmp_path / "dead.jsonl") == []
            store.up()
            write_lines(src, _records(600, N), mode="ab")
            write_lines(src, [{"id": -1, "store": "s0000", "ts": BASE_MS + 3_600_000}], mode="ab")  # closes the rest
            wait_until(lambda: len(_ids(tmp_path)) >= N, 90, what="every record after the outage")
            wait_until(lambda: not (status(admin) or {}).get("problems"), 30, what="ready again")
            wait_until(lambda: _committed(tmp_path) > before, 30, what="commits past the outage")
            d.signal(signal.SIGTERM)
            assert d.wait(30) == 0, d.stderr[-3000:]
    ids = _ids(tmp_path)
    assert sorted(ids) == list(range(N))  # each exactly once
    rows = {r["id"]: r for rows in window_files(tmp_path / "out").values() for r in rows}
    assert all(rows[i]["region"] == REF[f"s{i:04d}"]["region"] for i in range(N))
    assert read_jsonl(tmp_path / "dead.jsonl") == []
    assert "halted" in d.stderr and "recovered" in d.stderr


def test_a_halted_lookup_still_stops_cleanly_on_sigterm(tmp_path):
    src = tmp_path / "orders.jsonl"
    write_lines(src, _records(0, 100))
    lookup = {"key": "store", "from": "http", "url": f"http://127.0.0.1:{free_port()}/ref/{{key}}"}  # nobody there
    doc = _doc(tmp_path, lookup, free_port())
    doc["daemon"]["shutdown_grace"] = "3s"
    with Daemon(write_config(tmp_path / "lk.toml", doc), tmp_path) as d:
        wait_until(lambda: "halted" in d.stderr, 30, what="the lookup halted")
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        assert d.wait(20) == 0, d.stderr[-3000:]
        assert time.monotonic() - t0 < 10
    assert read_jsonl(tmp_path / "dead.jsonl") == [] and _committed(tmp_path) == 0


KEYS: list[Any] = [True, 1, 1.0, "1", False, 0, 0.0, "0", -0.5]


def _typed_records() -> list[dict[str, Any]]:
    return [{"id": i, "k": KEYS[i % len(KEYS)], "ts": BASE_MS + i * 1000} for i in range(90)]


def _finite(tmp_path: Path, lookup: dict[str, Any]) -> list[dict[str, Any]]:
    write_lines(tmp_path / "orders.jsonl", _typed_records())
    doc = _doc(tmp_path, {"key": "k", "retries": 0, "on_missing": "dead_letter", **lookup}, free_port())
    doc["sources"]["orders"]["follow"] = False
    del doc["admin"]
    res = run_cli("run", "-c", str(write_config(tmp_path / "lk.toml", doc)))
    assert res.returncode == 0, res.stderr
    return [r for rows in window_files(tmp_path / "out").values() for r in rows]


def test_http_keys_of_different_types_are_asked_and_cached_apart(tmp_path):
    seen: list[str] = []
    lock = threading.Lock()

    def app() -> web.Application:
        async def ref(request: web.Request) -> web.Response:
            with lock:
                seen.append(request.match_info["key"])
            return web.json_response({"asked": request.match_info["key"]})

        a = web.Application()
        a.router.add_get("/ref/{key}", ref)
        return a

    with ThreadedServer(app) as server:
        rows = _finite(tmp_path, {"from": "http", "url": f"{server.url}/ref/{{key}}"})
    def spelled(k: Any) -> str:  # as JSON spells it (a dict would mix true, 1 and 1.0 up itself)
        return ("true" if k else "false") if type(k) is bool else repr(k) if type(k) is float else str(k)

    assert len(rows) == 90
    for r in rows:
        assert r["asked"] == spelled(r["k"]), r
    assert sorted(seen) == sorted(spelled(k) for k in KEYS)  # each asked once


def test_postgres_keys_keep_their_type_in_the_query_and_the_cache(tmp_path, postgres):
    rows = _finite(tmp_path, {"from": "postgres", "dsn": postgres,
                              "query": "SELECT pg_typeof(:key)::text AS kind, (:key)::text AS sent"})
    kinds = {bool: "boolean", int: "bigint", float: "double precision", str: "text"}
    assert len(rows) == 90
    for r in rows:
        k = r["k"]
        assert r["kind"] == kinds[type(k)], r
        if type(k) is bool:
            assert r["sent"] == ("true" if k else "false"), r


def test_each_dead_letter_names_its_own_key_and_reason(tmp_path):
    codes = [400, 403, 409, 410, 422]  # 4xx that speak of the key (not 401, 404, 407, 408, 429)

    def app() -> web.Application:
        async def ref(request: web.Request) -> web.Response:
            key = request.match_info["key"]
            if key.startswith("bad"):
                return web.Response(status=codes[int(key[3:])])  # each bad key its own 4xx
            return web.json_response({"ok": key})

        a = web.Application()
        a.router.add_get("/ref/{key}", ref)
        return a

    records = [{"id": i, "k": f"bad{i % 5}" if i % 3 == 0 else f"good{i}", "ts": BASE_MS + i * 1000}
               for i in range(60)]
    write_lines(tmp_path / "orders.jsonl", records)
    with ThreadedServer(app) as server:
        doc = _doc(tmp_path, {"key": "k", "from": "http", "url": f"{server.url}/ref/{{key}}"}, free_port())
        doc["sources"]["orders"]["follow"] = False
        del doc["admin"]
        res = run_cli("run", "-c", str(write_config(tmp_path / "lk.toml", doc)))
    assert res.returncode == 0, res.stderr
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert sorted(d["value"]["id"] for d in dead) == [i for i in range(60) if i % 3 == 0]
    for d in dead:
        k = d["value"]["k"]
        assert d["detail"] == f"lookup of k = '{k}' failed: HTTP {codes[int(k[3:])]}", d
    assert len(_ids(tmp_path)) == 40


def test_store_failures_dead_lettered_on_request_each_name_their_own_key(tmp_path):
    fails = {"a": 500, "b": 503, "c": 502}

    def app() -> web.Application:
        async def ref(request: web.Request) -> web.Response:
            return web.Response(status=fails[request.match_info["key"]])

        a = web.Application()
        a.router.add_get("/ref/{key}", ref)
        return a

    write_lines(tmp_path / "orders.jsonl", [{"id": i, "k": "abc"[i % 3], "ts": BASE_MS + i * 1000} for i in range(30)])
    with ThreadedServer(app) as server:
        doc = _doc(tmp_path, {"key": "k", "from": "http", "url": f"{server.url}/ref/{{key}}"}, free_port(),
                   on_failure="dead_letter", retries=0)
        doc["sources"]["orders"]["follow"] = False
        del doc["admin"]
        res = run_cli("run", "-c", str(write_config(tmp_path / "lk.toml", doc)))
    assert res.returncode == 0, res.stderr
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert len(dead) == 30
    for d in dead:
        k = d["value"]["k"]
        assert d["detail"] == f"lookup of k = '{k}' failed: HTTP {fails[k]}", d
