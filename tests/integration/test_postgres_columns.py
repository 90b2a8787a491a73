"""The PostgreSQL sink against a real server: a field the table has no column for becomes a column
(`add_columns`, ADD COLUMN IF NOT EXISTS in the window's transaction) instead of halting the sink."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from pydantic import ValidationError

from rtstream.model.errors import RowsRejected, SinkError
from rtstream.model.window import Window
from rtstream.runtime.context import Context
from rtstream.sinks.postgres import PostgresConfig, PostgresSink

W1 = Window(1_767_225_600_000, 1_767_225_900_000)
W2 = Window(1_767_225_900_000, 1_767_226_200_000)
START1, END1, START2, END2 = ("2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z", "2026-01-01T00:05:00Z",
                              "2026-01-01T00:10:00Z")


def table_name():
    return f"t_{uuid.uuid4().hex[:10]}"


def make_sink(dsn, table, key_fields=("k",), **cfg):
    config = PostgresConfig.model_validate({"type": "postgres", "dsn": dsn, "table": table, **cfg})
    return PostgresSink("db", config, Context(pipeline="t", state_dir=None, key_fields=list(key_fields)))  # type: ignore[arg-type]


def row(start, end, k, **fields):
    return {"window_start": start, "window_end": end, "k": k, **fields}


def at(iso):
    return datetime.fromisoformat(iso).astimezone(UTC)


async def query(dsn, sql):
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def column_types(dsn, table):
    return [(r["column_name"], r["data_type"]) for r in await query(
        dsn, f"select column_name, data_type from information_schema.columns where table_name = '{table}' "
             f"order by ordinal_position")]


async def writing(sink, *windows):
    """Start the sink, write each (window, rows), close it; what each write raised (None if nothing)."""
    await sink.start()
    raised = []
    try:
        for window, rows in windows:
            try:
                await sink.write(window, rows)
                raised.append(None)
            except (RowsRejected, SinkError) as exc:
                raised.append(exc)
    finally:
        await sink.close()
    return raised


async def _new_field(dsn, table):
    first = [row(START1, END1, "a", n=1), row(START1, END1, "b", n=2)]
    second = [row(START2, END2, "a", n=3, country="fr", score=1.5, tags=["x"], ok=True), row(START2, END2, "b", n=4)]
    assert await writing(make_sink(dsn, table), (W1, first), (W2, second)) == [None, None]
    types = await column_types(dsn, table)
    got = await query(dsn, f"select * from {table} order by window_start, k")
    assert await writing(make_sink(dsn, table), (W2, second)) == [None]  # a replay upserts the same rows
    again = await query(dsn, f"select * from {table} order by window_start, k")
    return types, got, again


def test_a_new_field_in_a_later_window_becomes_a_typed_column_and_both_windows_read_back(postgres):
    table = table_name()
    types, got, again = asyncio.run(_new_field(postgres, table))
    assert types == [("window_start", "timestamp with time zone"), ("window_end", "timestamp with time zone"),
                     ("k", "text"), ("n", "bigint"), ("country", "text"), ("score", "double precision"),
                     ("tags", "jsonb"), ("ok", "boolean")]
    none = {"country": None, "score": None, "tags": None, "ok": None}
    assert got == [
        {"window_start": at(START1), "window_end": at(END1), "k": "a", "n": 1, **none},
        {"window_start": at(START1), "window_end": at(END1), "k": "b", "n": 2, **none},
        {"window_start": at(START2), "window_end": at(END2), "k": "a", "n": 3, "country": "fr", "score": 1.5,
         "tags": '["x"]', "ok": True},
        {"window_start": at(START2), "window_end": at(END2), "k": "b", "n": 4, **none}]
    assert again == got


async def _later_row_of_the_first_window(dsn, table):
    rows = [row(START1, END1, "a", n=1), row(START1, END1, "b", n=2, size=None), row(START1, END1, "c", n=3, size=7),
            row(START1, END1, "d", n=4, size="big")]  # the column is bigint (its first value): 'big' is refused
    (raised,) = await writing(make_sink(dsn, table), (W1, rows))
    return raised, await column_types(dsn, table), await query(dsn, f"select k, size from {table} order by k")


def test_a_field_only_in_a_later_row_of_the_first_window_is_a_column_typed_by_its_first_value(postgres):
    raised, types, got = asyncio.run(_later_row_of_the_first_window(postgres, table_name()))
    assert types[-1] == ("size", "bigint")
    assert isinstance(raised, RowsRejected)
    assert [(r[0]["k"], why) for r, why in raised.rejected] == [
        ("d", "column 'size' (bigint) cannot hold 'big' from field 'size'")]
    assert got == [{"k": "a", "size": None}, {"k": "b", "size": None}, {"k": "c", "size": 7}]


async def _unusable_names(dsn, table):
    first = [row(START1, END1, "a", n=1)]
    second = [row(START2, END2, "a", n=2, **{'x" bigint); DROP TABLE t; --': 1}),
              row(START2, END2, "b", n=3, **{"f" * 64: 1}),
              row(START2, END2, "c", n=4, xmin=5),
              row(START2, END2, "d", n=5, Note="kept apart from note", note="kept")]  # quoted: case counts
    raised = await writing(make_sink(dsn, table), (W1, first), (W2, second))
    return raised, await column_types(dsn, table), await query(dsn, f"select k, n, \"Note\", note from {table} "
                                                                    f"order by window_start, k")


def test_a_field_whose_name_cannot_be_a_column_sends_its_rows_to_the_dead_letters(postgres):
    (first, second), types, got = asyncio.run(_unusable_names(postgres, table_name()))
    assert first is None and isinstance(second, RowsRejected)
    reasons = {r[0]["k"]: why for r, why in second.rejected}
    assert reasons == {
        "a": "field 'x\" bigint); DROP TABLE t; --' is not a usable column name (letters, digits and _, not starting "
             "with a digit)",
        "b": f"field {'f' * 64!r}... is longer than PostgreSQL's 63-byte column names",
        "c": "field 'xmin' is the name of a PostgreSQL system column"}
    assert [c for c, _ in types] == ["window_start", "window_end", "k", "n", "Note", "note"]
    assert got == [{"k": "a", "n": 1, "Note": None, "note": None},
                   {"k": "d", "n": 5, "Note": "kept apart from note", "note": "kept"}]


async def _refused_by_hand_then_fixed(dsn, table):
    sink = make_sink(dsn, table, add_columns=False)
    await sink.start()
    try:
        await sink.write(W1, [row(START1, END1, "a", n=1)])
        with pytest.raises(SinkError, match="column 'surprise' is not in table .*set add_columns = true"):
            await sink.write(W2, [row(START2, END2, "a", n=2), row(START2, END2, "b", n=3, surprise=1)])
        conn = await asyncpg.connect(dsn)
        await conn.execute(f"ALTER TABLE {table} ADD COLUMN surprise integer")
        await conn.close()
        await sink.write(W2, [row(START2, END2, "a", n=2), row(START2, END2, "b", n=3, surprise=1)])
    finally:
        await sink.close()
    return await query(dsn, f"select k, n, surprise from {table} order by window_start, k")


def test_add_columns_false_refuses_until_the_column_is_added_by_hand_then_writes(postgres):
    assert asyncio.run(_refused_by_hand_then_fixed(postgres, table_name())) == [
        {"k": "a", "n": 1, "surprise": None}, {"k": "a", "n": 2, "surprise": None}, {"k": "b", "n": 3, "surprise": 1}]


async def _server_refusal_with_a_new_column(dsn, table):
    conn = await asyncpg.connect(dsn)
    await conn.execute(f"CREATE TABLE {table} (window_start timestamptz, window_end timestamptz, k text, "
                       f"n bigint CHECK (n >= 0), PRIMARY KEY (window_start, k))")
    await conn.close()
    rows = [row(START1, END1, "a", n=1, extra="x"), row(START1, END1, "b", n=-1, extra="y")]
    (raised,) = await writing(make_sink(dsn, table, add_columns=True), (W1, rows))
    return raised, await query(dsn, f"select k, n, extra from {table}")


def test_a_row_the_server_refuses_in_a_window_that_adds_a_column_is_found_row_by_row(postgres):
    raised, got = asyncio.run(_server_refusal_with_a_new_column(postgres, table_name()))
    assert isinstance(raised, RowsRejected)
    assert [(r[0]["k"], why.split(":")[0]) for r, why in raised.rejected] == [("b", "postgres refused the row")]
    assert got == [{"k": "a", "n": 1, "extra": "x"}]  # the column was added again in the row-by-row transaction


async def _two_replicas(dsn, table):
    one, two = make_sink(dsn, table), make_sink(dsn, table)
    rejected = []
    await one.start()
    await two.start()
    try:
        await one.write(W1, [row(START1, END1, "a", n=1)])
        await two.write(W1, [row(START1, END1, "b", n=2)])  # knows the table from before it existed: created anew
        # both add the same column at once, each with its own idea of its type
        await asyncio.gather(one.write(W2, [row(START2, END2, "a", n=3, extra=1)]),
                             two.write(W2, [row(START2, END2, "b", n=4, extra="x")]), return_exceptions=True)
        for sink, r in ((one, row(START2, END2, "a", n=3, extra=1)), (two, row(START2, END2, "b", n=4, extra="x"))):
            try:
                await sink.write(W2, [r])  # what a retry does
            except RowsRejected as exc:
                rejected += exc.rejected
    finally:
        await one.close()
        await two.close()
    return rejected, await column_types(dsn, table), await query(dsn, f"select k, n, extra from {table} order by n")


def test_two_replicas_adding_one_column_at_once_both_go_on(postgres):
    rejected, types, got = asyncio.run(_two_replicas(postgres, table_name()))
    extra_type = dict(types)["extra"]
    assert extra_type in ("bigint", "text")
    if extra_type == "bigint":  # the other's value is refused row-wise, never a halt
        assert [(r[0]["k"], why) for r, why in rejected] == [
            ("b", "column 'extra' (bigint) cannot hold 'x' from field 'extra'")]
        assert [r["k"] for r in got] == ["a", "b", "a"]
    else:
        assert [r["extra"] for r in got] == [None, None, "1", "x"]


async def _mapped(dsn, table):
    sink = make_sink(dsn, table, columns={"window_start": "window_start", "k": "k", "n": "n"})
    raised = await writing(sink, (W1, [row(START1, END1, "a", n=1)]), (W2, [row(START2, END2, "a", n=2, other=1)]))
    return raised, await column_types(dsn, table)


def test_with_a_columns_mapping_only_mapped_fields_are_written_and_no_column_added(postgres):
    raised, types = asyncio.run(_mapped(postgres, table_name()))
    assert raised == [None, None]
    assert [c for c, _ in types] == ["window_start", "k", "n"]


def test_add_columns_with_a_columns_mapping_is_refused_by_the_config():
    with pytest.raises(ValidationError, match="add_columns = true cannot be honoured with `columns`"):
        PostgresConfig.model_validate({"type": "postgres", "dsn": "x", "table": "t", "columns": {"a": "a"},
                                       "add_columns": True})
