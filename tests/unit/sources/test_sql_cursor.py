"""The `sql` source's cursor cut (rtstream.sources.sql_cursor) and PostgreSQL's far dates (rtstream.connect.pg_time)."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from rtstream.connect import pg_time
from rtstream.sources.sql_cursor import Cursor, CursorError, bind, from_marker, to_marker

UTC = dt.UTC


def _rows(*values: object) -> list[dict[str, object]]:
    return [{"id": i, "c": v} for i, v in enumerate(values, 1)]


def test_a_full_page_leaves_its_last_value_for_the_next_page():
    cur = Cursor("c", None, 0)
    taken, held = cur.take(_rows(1, 1, 2, 2, 3), full=True)
    assert [r["c"] for r in taken] == [1, 1, 2, 2] and cur.value == 2 and not held
    taken, _ = cur.take(_rows(3, 3), full=False)
    assert [r["c"] for r in taken] == [3, 3] and cur.value == 3


def test_a_page_of_one_value_without_a_tiebreak_is_refused():
    with pytest.raises(CursorError, match="more rows share c = 5 than the query's LIMIT"):
        Cursor("c", None, 0).take(_rows(5, 5, 5), full=True)


def test_datetimes_compare_by_time_not_by_text():
    a = dt.datetime(2026, 1, 1, tzinfo=UTC)
    b = a + dt.timedelta(microseconds=500_000)
    cur = Cursor("c", None, "1970-01-01T00:00:00Z")
    cur.take(_rows(a, b), full=False)
    assert cur.value == b
    assert from_marker(to_marker(cur.value)) == b


def test_rows_at_or_before_the_cursor_are_dropped_and_a_tiebreak_orders_equal_values():
    cur = Cursor("c", "id", 10, tiebreak=2, started=True)
    taken, _ = cur.take([{"c": 10, "id": 1}, {"c": 10, "id": 3}, {"c": 11, "id": 0}], full=True)
    assert [(r["c"], r["id"]) for r in taken] == [(10, 3), (11, 0)] and (cur.value, cur.tiebreak) == (11, 0)


def test_an_integer_gap_holds_later_rows_until_settle_has_passed():
    cur = Cursor("c", None, 0, settle=30)
    taken, held = cur.take(_rows(2, 3), full=False)
    assert taken == [] and held and cur.value == 0
    taken, held = cur.take(_rows(1, 2, 3), full=False)  # the late transaction committed
    assert [r["c"] for r in taken] == [1, 2, 3] and not held
    cur.take(_rows(5), full=False)
    cur.gaps[4] = time.monotonic() - 31  # 4 has been missing for longer than settle: rolled back
    taken, held = cur.take(_rows(5), full=False)
    assert [r["c"] for r in taken] == [5] and not held and cur.value == 5


def test_a_recent_timestamp_waits_for_settle():
    now = dt.datetime.now(UTC)
    cur = Cursor("c", None, "1970-01-01T00:00:00Z", settle=60)
    taken, held = cur.take(_rows(now - dt.timedelta(minutes=5), now), full=False)
    assert len(taken) == 1 and held and cur.value == now - dt.timedelta(minutes=5)


def test_a_start_of_another_type_names_the_key():
    with pytest.raises(CursorError, match=r"^sources.s.cursor_start: 0 is number, but c holds text"):
        Cursor("c", None, 0, start_key="sources.s.cursor_start").take(_rows("a"), full=False)
    with pytest.raises(CursorError, match="0 is number, but the query compares it with timestamptz"):
        bind(0, "timestamptz")
    assert bind("2026-01-01T00:00:00Z", "timestamptz") == dt.datetime(2026, 1, 1, tzinfo=UTC)


def test_far_dates_are_their_exact_text():
    y2k = dt.date(2000, 1, 1)
    assert pg_time.decode_date(((dt.date(1, 1, 1) - y2k).days - 1,)) == "0001-12-31 BC"
    assert pg_time.decode_date(((dt.date(9999, 12, 31) - y2k).days + 1,)) == "10000-01-01"
    assert pg_time.decode_date((2**31 - 1,)) == "infinity"
    assert pg_time.decode_date((5,)) == dt.date(2000, 1, 6)
    us = ((dt.date(1, 1, 1) - y2k).days - 1) * 86_400_000_000 + 3_600_000_000
    assert pg_time.decode_timestamptz((us,)) == "0001-12-31T01:00:00Z BC"
    assert pg_time.encode_timestamptz(dt.datetime(2000, 1, 1, 0, 0, 1, tzinfo=UTC)) == (1_000_000,)
