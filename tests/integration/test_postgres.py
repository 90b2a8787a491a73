"""The PostgreSQL sink against a real server: truth, replays, torn connections, schema drift."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from rtstream.model.errors import SinkError
from rtstream.model.window import Window
from rtstream.runtime.context import Context
from rtstream.sinks.postgres import PostgresConfig, PostgresSink
from tests.data import write_lines
from tests.reference import tumbling_truth
from tests.support import run_cli, write_config


def table_name():
    return f"t_{uuid.uuid4().hex[:10]}"


async def fetch(dsn, sql):
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


def pg_config(tmp_path, dsn, table, source_path):
    doc = {
        "pipeline": {"name": "pg", "flow": "events >> per_user >> db"},
        "window": {"size": "5m"},
        "sources": {"events": {"type": "file", "path": str(source_path)}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id",
                                "aggregates": {"events": "count()", "spent": "sum(amount)", "biggest": "max(amount)"}}},
        "sinks": {"db": {"type": "postgres", "dsn": "${TEST_DATABASE_URL}", "table": table}},
        "daemon": {"state_dir": str(tmp_path / "state")},
    }
    return write_config(tmp_path / "pg.toml", doc)


def test_results_equal_truth_and_a_replay_changes_nothing(tmp_path, postgres, events):
    table = table_name()
    write_lines(tmp_path / "in.jsonl", events)
    cfg = pg_config(tmp_path, postgres, table, tmp_path / "in.jsonl")
    env = {"TEST_DATABASE_URL": postgres}
    res = run_cli("run", "-c", str(cfg), env=env)
    assert res.returncode == 0, res.stderr
    rows = asyncio.run(fetch(postgres, f"select * from {table} order by window_start, user_id"))
    truth = tumbling_truth(events, 300, "user_id")
    assert len(rows) == len(truth)
    for r in rows:
        assert isinstance(r["window_start"], datetime) and r["window_start"].tzinfo is not None
        want = truth[(r["window_start"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), r["user_id"])]
        assert (r["events"], r["biggest"]) == (want["events"], want["biggest"])
        assert r["spent"] == pytest.approx(want["spent"])
    cols = asyncio.run(fetch(postgres, f"select column_name, data_type from information_schema.columns "
                                       f"where table_name = '{table}' order by ordinal_position"))
    assert [(c["column_name"], c["data_type"]) for c in cols] == [
        ("window_start", "timestamp with time zone"), ("window_end", "timestamp with time zone"),
        ("user_id", "text"), ("events", "bigint"), ("spent", "double precision"), ("biggest", "double precision")]
    assert run_cli("run", "-c", str(cfg), env=env).returncode == 0  # the same input again
    again = asyncio.run(fetch(postgres, f"select * from {table} order by window_start, user_id"))
    assert again == rows


def make_sink(dsn, table, **cfg):
    config = PostgresConfig.model_validate({"type": "postgres", "dsn": dsn, "table": table, **cfg})
    return PostgresSink("db", config, Context(pipeline="t", state_dir=None, key_fields=["k"]))  # type: ignore[arg-type]


def window_rows(n, start="2026-01-01T00:00:00Z", end="2026-01-01T00:05:00Z", extra=None):
    return [{"window_start": start, "window_end": end, "k": f"k{i}", "n": i, **(extra or {})} for i in range(n)]


WIN = Window(1_767_225_600_000, 1_767_225_900_000)


async def _torn_connection(dsn, table):
    sink = make_sink(dsn, table, chunk_rows=500)
    await sink.start()
    await sink.write(WIN, window_rows(10))  # creates the table
    killer = await asyncpg.connect(dsn)
    big = window_rows(60_000, start="2026-01-01T00:05:00Z", end="2026-01-01T00:10:00Z")

    async def kill_writer():
        while True:  # wait until the sink's COPY is under way, then cut its connection
            pids = await killer.fetch("select pid from pg_stat_activity where query like 'COPY%' and pid <> pg_backend_pid()")
            if pids:
                await killer.execute("select pg_terminate_backend($1)", pids[0]["pid"])
                return
            await asyncio.sleep(0.001)

    killing = asyncio.create_task(kill_writer())
    with pytest.raises(Exception):  # noqa: B017 - whatever asyncpg raises for a dead connection
        await sink.write(WIN, big)
    await killing
    count = await killer.fetchval(f"select count(*) from {table} where window_start = '2026-01-01T00:05:00Z'")
    assert count == 0  # nothing of the torn window
    await sink.write(WIN, big)  # the retry writes it whole
    count = await killer.fetchval(f"select count(*) from {table} where window_start = '2026-01-01T00:05:00Z'")
    assert count == 60_000
    await killer.close()
    await sink.close()


def test_a_torn_connection_leaves_the_whole_window_or_none(postgres):
    asyncio.run(_torn_connection(postgres, table_name()))


async def _drift(dsn, table):
    sink = make_sink(dsn, table, add_columns=False)  # the default adds the column: test_postgres_columns
    await sink.start()
    await sink.write(WIN, window_rows(3))
    with pytest.raises(SinkError, match="column 'surprise' is not in table"):
        await sink.write(WIN, window_rows(3, extra={"surprise": 1}))
    with pytest.raises(SinkError, match="column 'n' \\(bigint\\) cannot hold 'many'"):
        await sink.write(WIN, [{"window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-01T00:05:00Z",
                                "k": "k0", "n": "many"}])
    rows = await fetch(dsn, f"select k, n from {table} order by k")
    assert rows == [{"k": "k0", "n": 0}, {"k": "k1", "n": 1}, {"k": "k2", "n": 2}]
    await sink.close()


def test_schema_drift_without_add_columns_fails_clearly_and_writes_nothing(postgres):
    asyncio.run(_drift(postgres, table_name()))


async def _insert_mode_and_mapping(dsn, table):
    sink = make_sink(dsn, table, mode="insert", columns={"window_start": "window_start", "who": "k", "n": "n"},
                     key_columns=["window_start", "who"])
    await sink.start()
    await sink.write(WIN, window_rows(2))
    await sink.write(WIN, window_rows(2))
    rows = await fetch(dsn, f"select who, n from {table} order by who")
    assert rows == [{"who": "k0", "n": 0}, {"who": "k0", "n": 0}, {"who": "k1", "n": 1}, {"who": "k1", "n": 1}]
    await sink.close()


def test_insert_mode_and_column_mapping(postgres):
    asyncio.run(_insert_mode_and_mapping(postgres, table_name()))


def test_validate_hides_the_password(tmp_path):
    (tmp_path / "in.jsonl").write_text("")  # validate checks that a file source's input exists
    cfg = pg_config(tmp_path, "", "x", tmp_path / "in.jsonl")
    res = run_cli("validate", "-c", str(cfg), env={"TEST_DATABASE_URL": "postgresql://u:s3cret@db.example:5433/app"})
    assert res.returncode == 0, res.stderr
    assert "postgres: db.example:5433/app table public.x (upsert)" in res.stdout and "s3cret" not in res.stdout
