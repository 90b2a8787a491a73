"""The SQLite sink against a real database file: a field the table has no column for becomes a
column (`add_columns`) instead of halting the sink; a field whose name cannot be one is refused row
by row; `add_columns = false` keeps the refusal."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from rtstream.model.errors import RowsRejected, SinkError
from rtstream.model.window import Window
from rtstream.runtime.context import Context
from rtstream.sinks.sqlite import SQLiteConfig, SQLiteSink

W1 = Window(1_767_225_600_000, 1_767_225_900_000)
W2 = Window(1_767_225_900_000, 1_767_226_200_000)
START1, END1, START2, END2 = ("2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z", "2026-01-01T00:05:00Z",
                              "2026-01-01T00:10:00Z")


def make_sink(path, key_fields=("k",), **cfg):
    config = SQLiteConfig.model_validate({"type": "sqlite", "path": str(path), "table": "t", **cfg})
    return SQLiteSink("db", config, Context(pipeline="t", state_dir=None, key_fields=list(key_fields)))  # type: ignore[arg-type]


def row(start, end, k, **fields):
    return {"window_start": start, "window_end": end, "k": k, **fields}


def read(path, sql):
    db = sqlite3.connect(path)
    try:
        cur = db.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        db.close()


def columns(path):
    db = sqlite3.connect(path)
    try:
        return [(r[1], r[2]) for r in db.execute("PRAGMA table_info(t)")]
    finally:
        db.close()


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


def test_a_new_field_in_a_later_window_becomes_a_column_and_both_windows_read_back(tmp_path):
    path = tmp_path / "out.db"
    first = [row(START1, END1, "a", n=1), row(START1, END1, "b", n=2)]
    second = [row(START2, END2, "a", n=3, country="fr", score=1.5), row(START2, END2, "b", n=4)]
    assert asyncio.run(writing(make_sink(path), (W1, first), (W2, second))) == [None, None]
    assert columns(path) == [("window_start", "TEXT"), ("window_end", "TEXT"), ("k", "TEXT"), ("n", "INTEGER"),
                             ("country", "TEXT"), ("score", "REAL")]
    got = read(path, "select * from t order by window_start, k")
    want = [{"country": None, "score": None, **r} for r in first] + [{"country": None, "score": None, **r}
                                                                      for r in second]
    assert got == want
    # a replay of the second window upserts by (window_start, k): the same rows, no new ones
    assert asyncio.run(writing(make_sink(path), (W2, second))) == [None]
    assert read(path, "select * from t order by window_start, k") == want


def test_a_field_only_in_a_later_row_of_the_first_window_is_a_column_too(tmp_path):
    path = tmp_path / "out.db"
    rows = [row(START1, END1, "a", n=1), row(START1, END1, "b", n=2, late=None),
            row(START1, END1, "c", n=3, late="here")]
    assert asyncio.run(writing(make_sink(path), (W1, rows))) == [None]
    assert [c for c, _ in columns(path)] == ["window_start", "window_end", "k", "n", "late"]
    assert [r["late"] for r in read(path, "select late from t order by k")] == [None, None, "here"]


def test_a_field_null_in_every_row_waits_for_a_value_to_type_its_column(tmp_path):
    path = tmp_path / "out.db"
    first = [row(START1, END1, "a", n=1, size=None)]
    second = [row(START2, END2, "a", n=2, size=7)]
    assert asyncio.run(writing(make_sink(path), (W1, first), (W2, second))) == [None, None]
    assert columns(path)[-1] == ("size", "INTEGER")  # not TEXT, which would store 7 as '7'
    assert read(path, "select k, size from t order by window_start") == [{"k": "a", "size": None},
                                                                          {"k": "a", "size": 7}]


def test_a_field_whose_name_cannot_be_a_column_sends_its_rows_to_the_dead_letters(tmp_path):
    path = tmp_path / "out.db"
    first = [row(START1, END1, "a", n=1)]
    second = [row(START2, END2, "a", n=2, **{'x"); DROP TABLE t; --': 1}),
              row(START2, END2, "b", n=3, **{"N": 5}),           # only the case of column n's letters differs
              row(START2, END2, "c", n=4, **{"bad name": None}),  # nothing to lose: written without it
              row(START2, END2, "d", n=5, extra=True)]
    first_raised, second_raised = asyncio.run(writing(make_sink(path), (W1, first), (W2, second)))
    assert first_raised is None
    assert isinstance(second_raised, RowsRejected)
    reasons = {r[0]["k"]: why for r, why in second_raised.rejected}
    assert set(reasons) == {"a", "b"}
    assert reasons["a"].startswith("field 'x\"); DROP TABLE t; --' is not a usable column name")
    assert reasons["b"] == ("field 'N' and column 'n' differ only in the case of their letters, which the "
                            "database does not tell apart")
    assert [c for c, _ in columns(path)] == ["window_start", "window_end", "k", "n", "extra"]
    assert read(path, "select k, n, extra from t order by window_start, k") == [
        {"k": "a", "n": 1, "extra": None}, {"k": "c", "n": 4, "extra": None}, {"k": "d", "n": 5, "extra": 1}]


def test_the_first_window_refuses_rows_with_an_unusable_field_and_creates_the_table_of_the_others(tmp_path):
    path = tmp_path / "out.db"
    rows = [row(START1, END1, "a", n=1, **{"my field": 2}), row(START1, END1, "b", n=2)]
    (raised,) = asyncio.run(writing(make_sink(path), (W1, rows)))
    assert isinstance(raised, RowsRejected) and [r[0]["k"] for r, _ in raised.rejected] == ["a"]
    assert read(path, "select k, n from t") == [{"k": "b", "n": 2}]


def test_add_columns_false_keeps_the_refusal_until_the_column_is_added_by_hand(tmp_path):
    path = tmp_path / "out.db"
    sink = make_sink(path, add_columns=False)
    second = [row(START2, END2, "a", n=2, surprise=1)]

    async def scenario():
        await sink.start()
        try:
            await sink.write(W1, [row(START1, END1, "a", n=1)])
            with pytest.raises(SinkError, match="column 'surprise' is not in table 't'"):
                await sink.write(W2, second)
            db = sqlite3.connect(path)
            db.execute("ALTER TABLE t ADD COLUMN surprise INTEGER")
            db.commit()
            db.close()
            await sink.write(W2, second)  # the retry finds the column the operator added
        finally:
            await sink.close()

    asyncio.run(scenario())
    assert read(path, "select k, surprise from t order by window_start") == [{"k": "a", "surprise": None},
                                                                             {"k": "a", "surprise": 1}]


def test_a_table_rtstream_did_not_create_is_not_altered_by_default(tmp_path):
    path = tmp_path / "out.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (window_start TEXT, window_end TEXT, k TEXT, n INTEGER, PRIMARY KEY (window_start, k))")
    db.close()
    (raised,) = asyncio.run(writing(make_sink(path, create_table=False), (W1, [row(START1, END1, "a", n=1, x=1)])))
    assert isinstance(raised, SinkError) and "column 'x' is not in table 't'" in str(raised)
    # and is when asked to
    assert asyncio.run(writing(make_sink(path, create_table=False, add_columns=True),
                               (W1, [row(START1, END1, "a", n=1, x=1)]))) == [None]
    assert read(path, "select k, n, x from t") == [{"k": "a", "n": 1, "x": 1}]


def test_rows_without_a_key_are_still_replaced_per_window_after_a_column_is_added(tmp_path):
    path = tmp_path / "out.db"
    first = [{"window_start": START1, "window_end": END1, "v": 1}]
    second = [{"window_start": START2, "window_end": END2, "v": 2}, {"window_start": START2, "window_end": END2,
                                                                    "v": 3, "tag": "x"}]
    sink = make_sink(path, key_fields=())
    assert asyncio.run(writing(sink, (W1, first), (W2, second))) == [None, None]
    assert asyncio.run(writing(make_sink(path, key_fields=()), (W2, second))) == [None]  # a replay
    assert read(path, "select v, tag from t order by v") == [{"v": 1, "tag": None}, {"v": 2, "tag": None},
                                                             {"v": 3, "tag": "x"}]
