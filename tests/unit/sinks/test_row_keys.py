"""What identifies a row in a table sink (rtstream.sinks.row_keys): the upsert key, and the rows a
key cannot tell apart, compared as a table compares them, erring towards a loud refusal."""

from __future__ import annotations

import pytest

from rtstream.model.errors import SinkError
from rtstream.sinks.row_keys import unique_rows, upsert_keys, window_deletes


def test_the_upsert_key_is_the_users_or_the_window_and_the_output_key_or_none():
    assert upsert_keys(["id"], ["window_start"], ["user"]) == ["id"]
    assert upsert_keys(None, ["window_start"], ["user"]) == ["window_start", "user"]
    assert upsert_keys(None, ["window_start", "window_id"], ["user"]) == ["window_start", "window_id", "user"]
    assert upsert_keys(None, ["window_start"], []) == []  # no key: the window is replaced whole


def test_unique_keys_pass_untouched():
    rows = [{"k": i} for i in range(5)]
    good, bad = unique_rows(rows, ["k"])
    assert good is rows and bad == []


@pytest.mark.parametrize("a, b", [(1, True), (1, 1.0), (1, "1"), ({"x": [1]}, {"x": [1]}), ([1, 2], [1, 2]),
                                  (float("nan"), float("nan"))])
def test_values_a_table_takes_for_one_are_a_collision(a, b):
    rows = [{"k": a, "n": 1}, {"k": b, "n": 2}, {"k": "other", "n": 3}]
    good, bad = unique_rows(rows, ["k"])
    assert good == [rows[2]]
    assert len(bad) == 1 and bad[0][0] == rows[:2]
    assert bad[0][1].startswith("2 rows of this window share the key (k) = (")


def test_a_null_or_missing_key_is_refused_row_by_row():
    rows = [{"a": 1, "b": None}, {"a": 1}, {"a": 1, "b": 2}]
    good, bad = unique_rows(rows, ["a", "b"])
    assert good == [rows[2]]
    assert [r for r, _ in bad] == [[rows[0]], [rows[1]]]
    assert bad[0][1] == ("key column 'b' is null or missing in this row: an upsert by (a, b) cannot find it again, "
                         "so a replay would add it twice")


def test_a_huge_or_odd_key_is_quoted_bounded():
    big = "x" * 10_000
    good, bad = unique_rows([{"k": big}, {"k": big}], ["k"])
    assert good == [] and len(bad[0][1]) < 500


def test_the_delete_of_a_window_names_its_fields_and_each_window_once():
    sql, params = window_deletes("db", '"t"', "t", ["window_start", "window_id"], ["a", "window_start", "window_end"],
                                 [(1, "S", "E"), (2, "S", "E"), (3, "S2", "E2")], lambda i: f"${i + 1}")
    assert sql == 'DELETE FROM "t" WHERE "window_start" = $1 AND "window_end" = $2'
    assert params == [("S", "E"), ("S2", "E2")]
    with pytest.raises(SinkError, match="has no window_start column"):
        window_deletes("db", '"t"', "t", ["window_start"], ["a"], [(1,)], lambda i: "?")
