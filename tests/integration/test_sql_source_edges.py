"""Issue #24, the `sql` source: rows sharing a cursor value across a page, rows that commit late,
values JSON cannot hold, timestamptz cursors, queries that write, a cursor_start of the wrong type.
Real SQLite files and the suite's PostgreSQL, through the real `rtstream` process."""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from rtstream.testing.peers.ports import free_port
from tests.data import BASE_MS
from tests.reference import iso
from tests.sql_writers import concurrent_inserts
from tests.support import Daemon, run_cli, wait_until, window_files, write_config

T0 = iso(BASE_MS)  # every row's time, so every row falls in one window


def _config(tmp_path: Path, dsn: str, query: str, cursor_field: str = "ts", admin: int | None = None,
            aggregates: dict[str, str] | None = None, **source: Any) -> Path:
    doc: dict[str, Any] = {
        "pipeline": {"name": "edges", "flow": "db >> per_id >> out"},
        "window": {"size": "5m", "lateness": "1s", "idle_timeout": "1h"},
        "sources": {"db": {"type": "sql", "dsn": dsn, "query": query, "cursor_field": cursor_field, **source}},
        "stages": {"per_id": {"type": "aggregate", "key": "id", "aggregates": {"n": "count()", **(aggregates or {})}}},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out"), "fsync": False}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms"},
    }
    if admin is not None:
        doc["admin"] = {"listen": f"127.0.0.1:{admin}"}
    return write_config(tmp_path / f"edges-{uuid.uuid4().hex[:6]}.toml", doc)


def _rows_out(tmp_path: Path) -> dict[Any, dict[str, Any]]:
    return {r["id"]: r for rows in window_files(tmp_path / "out").values() for r in rows}


def _read(stderr: str) -> int:
    m = re.search(r"all sources finished: ([\d,]+) records read", stderr)
    assert m, stderr[-2000:]
    return int(m.group(1).replace(",", ""))


def _one_line_error(stderr: str, *needles: str) -> None:
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [ln for ln in stderr.splitlines() if "ERROR" in ln]
    assert len(lines) == 1, stderr[-3000:]
    for n in needles:
        assert n in lines[0], lines[0]


def _pg(dsn: str, *statements: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            for s in statements:
                await conn.execute(s)
        finally:
            await conn.close()
    asyncio.run(go())


def _pg_value(dsn: str, query: str) -> Any:
    async def go() -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(query)
        finally:
            await conn.close()
    return asyncio.run(go())


def _table() -> str:
    return f"t_{uuid.uuid4().hex[:8]}"


def _readyz(port: int) -> tuple[int | None, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, orjson.loads(err.read())
    except OSError:
        return None, None


# --- 1. duplicate cursor values across a page --------------------------------------------------

def test_sqlite_ties_across_a_full_page_are_all_read(tmp_path):
    db = tmp_path / "t.db"
    con = sqlite3.connect(db)
    con.execute("create table t (id integer primary key, ts text, v real)")
    # 250 rows, 50 per cursor value (a bulk insert sharing now()), five values a second apart
    con.executemany("insert into t values (?, ?, ?)",
                    [(i, iso(BASE_MS + (i - 1) // 50 * 1000), 1.0) for i in range(1, 251)])
    con.commit()
    con.close()
    cfg = _config(tmp_path, f"sqlite:///{db}", "SELECT id, ts, v FROM t WHERE ts > :cursor ORDER BY ts LIMIT 120",
                  cursor_start="", stop_at_end=True)
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    assert _read(res.stderr) == 250
    out = _rows_out(tmp_path)
    assert sorted(out) == list(range(1, 251)) and all(r["n"] == 1 for r in out.values())


def test_postgres_bulk_insert_sharing_now_is_read_whole(tmp_path, postgres):
    table = _table()
    _pg(postgres, f"create table {table} (id bigint generated always as identity primary key, ts timestamptz, v int)",
        *(f"insert into {table} (ts, v) select '{iso(BASE_MS + k * 1000)}'::timestamptz, g "
          f"from generate_series(1, 50) g" for k in range(5)))
    cfg = _config(tmp_path, postgres, f"SELECT id, ts, v FROM {table} WHERE ts > :cursor ORDER BY ts LIMIT 120",
                  cursor_start="1970-01-01T00:00:00Z", stop_at_end=True)
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    assert _read(res.stderr) == 250
    assert sorted(_rows_out(tmp_path)) == list(range(1, 251))


def test_more_ties_than_the_limit_need_a_tiebreak_and_then_are_all_read(tmp_path, postgres):
    table = _table()
    _pg(postgres, f"create table {table} (id bigint generated always as identity primary key, ts timestamptz, v int)",
        *(f"insert into {table} (ts, v) select '{iso(BASE_MS + k * 1000)}'::timestamptz, g "
          f"from generate_series(1, 150) g" for k in range(3)))
    plain = _config(tmp_path, postgres, f"SELECT id, ts FROM {table} WHERE ts > :cursor ORDER BY ts LIMIT 120",
                    cursor_start="1970-01-01T00:00:00Z", stop_at_end=True)
    res = run_cli("run", "-c", str(plain))
    assert res.returncode == 1
    _one_line_error(res.stderr, "more rows share ts", "tiebreak_field")
    tied = _config(tmp_path, postgres, f"SELECT id, ts FROM {table} WHERE (ts, id) > (:cursor, :tiebreak) "
                                       "ORDER BY ts, id LIMIT 120",
                   cursor_start="1970-01-01T00:00:00Z", tiebreak_field="id", stop_at_end=True)
    res = run_cli("run", "-c", str(tied))
    assert res.returncode == 0, res.stderr[-3000:]
    assert _read(res.stderr) == 450
    assert sorted(_rows_out(tmp_path)) == list(range(1, 451))


def test_concurrent_writers_sharing_cursor_values_lose_nothing_with_a_tiebreak(tmp_path, postgres):
    table = _table()
    _pg(postgres, f"create table {table} (id bigint generated always as identity primary key, ts timestamptz, v int)")
    ids = asyncio.run(concurrent_inserts(postgres, table, transactions=6, rows_each=40, seed=7, ts=T0))
    cfg = _config(tmp_path, postgres, f"SELECT id, ts FROM {table} WHERE (ts, id) > (:cursor, :tiebreak) "
                                      "ORDER BY ts, id LIMIT 50",
                  cursor_start="1970-01-01T00:00:00Z", tiebreak_field="id", stop_at_end=True)
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    assert sorted(_rows_out(tmp_path)) == sorted(ids)


# --- 2. rows that commit late -------------------------------------------------------------------

def test_an_id_committed_after_a_higher_one_was_polled_is_read_with_settle(tmp_path, postgres):
    table = _table()
    _pg(postgres, f"create table {table} (id bigint generated always as identity primary key, ts timestamptz, v int)")
    admin = free_port()
    cfg = _config(tmp_path, postgres, f"SELECT id, ts, v FROM {table} WHERE id > :cursor ORDER BY id LIMIT 500",
                  cursor_field="id", admin=admin, interval="1s", settle="30s")

    async def scenario() -> None:
        first = await asyncpg.connect(postgres)
        second = await asyncpg.connect(postgres)
        watcher = await asyncpg.connect(postgres)
        mine = [first.get_server_pid(), second.get_server_pid(), watcher.get_server_pid()]
        tx = first.transaction()
        await tx.start()
        assert await first.fetchval(f"insert into {table} (ts, v) values ('{T0}', 1) returning id") == 1
        assert await second.fetchval(f"insert into {table} (ts, v) values ('{T0}', 2) returning id") == 2
        committed = await second.fetchval("select clock_timestamp()")

        async def polled_since(at: Any) -> bool:
            # the daemon's connections ran a statement that began after `at`: a poll saw id 2 alone
            latest = await watcher.fetchval("select max(query_start) from pg_stat_activity where pid <> all($1) "
                                            "and datname = current_database() and backend_type = 'client backend'",
                                            mine)
            return latest is not None and latest > at

        with Daemon(cfg, tmp_path) as d:
            for _ in range(2):  # two polls after id 2 committed, while id 1 is still open
                deadline = asyncio.get_running_loop().time() + 30
                while not await polled_since(committed):
                    assert asyncio.get_running_loop().time() < deadline, "no poll"
                    await asyncio.sleep(0.05)
                committed = await watcher.fetchval("select clock_timestamp()")
            await tx.commit()
            await second.execute(f"insert into {table} (ts, v) values ('{iso(BASE_MS + 86_400_000)}', 3)")
            await asyncio.to_thread(wait_until, lambda: {1, 2} <= set(_rows_out(tmp_path)), 40,
                                    what="ids 1 and 2 written")
            d.signal(signal.SIGTERM)
            assert await asyncio.to_thread(d.wait, 30) == 0
        for c in (first, second, watcher):
            await c.close()

    asyncio.run(scenario())
    out = _rows_out(tmp_path)
    assert out[1]["n"] == 1 and out[2]["n"] == 1


# --- 4. values JSON cannot hold; readiness while fetches fail ------------------------------------

def test_numeric_infinity_1e30_and_bc_dates_are_carried_as_their_value(tmp_path, postgres):
    table = _table()
    _pg(postgres, f"create table {table} (id int primary key, ts timestamptz, big numeric, d date, at timestamptz)",
        f"insert into {table} values (1, '{T0}', 1e30, '2024-01-02', '{T0}'), "
        f"(2, '{T0}', 'Infinity', '0044-03-15 BC', '0044-03-15 12:30:00+00 BC'), "
        f"(3, '{T0}', 7.5, 'infinity', '10000-01-01 00:00:00+00')")
    cfg = _config(tmp_path, postgres, f"SELECT id, ts, big, d, at FROM {table} WHERE id > :cursor ORDER BY id",
                  cursor_field="id", stop_at_end=True,
                  aggregates={"big": "first(big)", "d": "first(d)", "at": "first(at)"})
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    assert _read(res.stderr) == 3
    out = _rows_out(tmp_path)
    assert (out[1]["big"], out[1]["d"]) == (1e30, "2024-01-02")
    assert (out[2]["big"], out[2]["d"], out[2]["at"]) == ("Infinity", "0044-03-15 BC", "0044-03-15T12:30:00Z BC")
    assert (out[3]["big"], out[3]["d"], out[3]["at"]) == (7.5, "infinity", "10000-01-01T00:00:00Z")


def test_readyz_is_not_ready_while_every_fetch_fails_and_a_write_is_refused(tmp_path, postgres):
    table = _table()
    _pg(postgres, f"create table {table} (id int primary key, ts timestamptz)",
        f"insert into {table} values (1, '{T0}'), (2, '{T0}')")
    admin = free_port()
    query = f"WITH gone AS (DELETE FROM {table} RETURNING id, ts) SELECT id, ts FROM gone WHERE id > :cursor"
    cfg = _config(tmp_path, postgres, query, cursor_field="id", admin=admin, interval="1s")
    with Daemon(cfg, tmp_path) as d:
        def failing() -> Any:
            status, doc = _readyz(admin)
            return doc["problems"]["db"] if status == 503 and "db" in (doc or {}).get("problems", {}) else None
        why = wait_until(failing, 30, what="/readyz to name the failing source")
        assert "must only read" in why and "read-only transaction" in why, why
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
    assert _pg_value(postgres, f"select count(*) from {table}") == 2  # nothing deleted


# --- 8. timestamptz cursors compared as datetimes -------------------------------------------------

def _fractional_table(dsn: str) -> str:
    table = _table()
    _pg(dsn, f"create table {table} (id int primary key, ts timestamptz)",
        f"insert into {table} values (1, '{T0}'), (2, '{T0[:-1]}.5Z'), (3, '{iso(BASE_MS + 1000)[:-1]}.5Z'), "
        f"(4, '{iso(BASE_MS + 2000)}')")  # as text, :00Z sorts after :00.500000Z
    return table


def test_a_timestamptz_cursor_without_a_cast_reads_every_row(tmp_path, postgres):
    table = _fractional_table(postgres)
    cfg = _config(tmp_path, postgres, f"SELECT id, ts FROM {table} WHERE ts > :cursor ORDER BY ts LIMIT 2",
                  cursor_start="1970-01-01T00:00:00Z", stop_at_end=True)
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    assert _read(res.stderr) == 4
    assert sorted(_rows_out(tmp_path)) == [1, 2, 3, 4]


def test_a_timestamptz_cursor_cast_from_text_compares_microseconds(tmp_path, postgres):
    table = _fractional_table(postgres)
    cfg = _config(tmp_path, postgres,
                  f"SELECT id, ts FROM {table} WHERE ts > :cursor::text::timestamptz ORDER BY ts LIMIT 2",
                  cursor_start="1970-01-01T00:00:00Z", stop_at_end=True)
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    assert _read(res.stderr) == 4  # each row once: ...:00Z is before ...:00.500000Z
    assert {k: r["n"] for k, r in _rows_out(tmp_path).items()} == {1: 1, 2: 1, 3: 1, 4: 1}


# --- 11. queries that write -----------------------------------------------------------------------

def test_a_delete_returning_is_refused_at_validate(tmp_path):
    db = tmp_path / "t.db"
    sqlite3.connect(db).close()
    cfg = _config(tmp_path, f"sqlite:///{db}", "DELETE FROM t WHERE id > :cursor RETURNING id, ts", cursor_field="id")
    res = run_cli("validate", "-c", str(cfg))
    assert res.returncode == 2
    assert "query must be a SELECT" in res.stderr and "Traceback" not in res.stderr


def test_a_write_hidden_in_a_with_fails_a_finite_run_in_one_line_and_deletes_nothing(tmp_path, postgres):
    table = _table()
    _pg(postgres, f"create table {table} (id int primary key, ts timestamptz)",
        f"insert into {table} values (1, '{T0}'), (2, '{T0}')")
    query = f"WITH gone AS (DELETE FROM {table} RETURNING id, ts) SELECT id, ts FROM gone WHERE id > :cursor"
    res = run_cli("run", "-c", str(_config(tmp_path, postgres, query, cursor_field="id", stop_at_end=True)))
    assert res.returncode == 1
    _one_line_error(res.stderr, "must only read", "read-only transaction")
    assert _pg_value(postgres, f"select count(*) from {table}") == 2


# --- 14. a cursor_start of the wrong type: one line naming the key --------------------------------

def test_a_text_cursor_with_a_numeric_cursor_start_is_one_line_naming_the_key_sqlite(tmp_path):
    db = tmp_path / "t.db"
    con = sqlite3.connect(db)
    con.execute("create table t (id integer primary key, ts text)")
    con.execute("insert into t values (1, ?)", (T0,))
    con.commit()
    con.close()
    cfg = _config(tmp_path, f"sqlite:///{db}", "SELECT id, ts FROM t WHERE ts > :cursor ORDER BY ts",
                  stop_at_end=True)  # cursor_start defaults to 0
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 1
    _one_line_error(res.stderr, "sources.db.cursor_start", "ts holds text")


def test_a_wrong_cursor_start_for_postgres_is_refused_at_start_naming_the_key(tmp_path, postgres):
    table = _fractional_table(postgres)
    for column in ("ts", "ts::text"):
        cfg = _config(tmp_path, postgres, f"SELECT id, ts FROM {table} WHERE {column} > :cursor ORDER BY ts",
                      stop_at_end=True)
        res = run_cli("run", "-c", str(cfg))
        assert res.returncode == 1
        _one_line_error(res.stderr, "failed to start", "sources.db.cursor_start: 0 is number")
