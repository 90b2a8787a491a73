"""The `where` language: what it means, what it refuses (with the column), and that nothing raises."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtstream.where.language import MAX_DEPTH, WhereError, compile_where

ROW = {"total": 1500, "store": "s002", "kind": "click", "rate": 0.5, "member": True, "coupon": None,
       "customer": {"country": "FR", "age": 41}, "order total": 7, "price": Decimal("9.90")}


@pytest.mark.parametrize("text, expected", [
    ("total > 1000 and store != 's001'", True),
    ("total > 1000 and store = 's002'", True),
    ("total >= 1500 and total <= 1500 and total == 1500.0", True),
    ("total < 1000 or kind = \"click\"", True),
    ("not total > 1000", False),
    ("kind in ['view', 'click']", True),
    ("kind not in ['view', 'click']", False),
    ("total in [1500, 2]", True),
    ("coupon is null and missing is null and customer is not null", True),
    ("customer.country = 'FR' and customer.age > 40", True),
    ("customer.country.code is null", True),  # a path through a string is null
    ("`order total` = 7", True),
    ("member", True),
    ("member and not (rate > 1 or price < 5)", True),
    ("price = 9.9 and price > 9", True),  # Decimal is a number
    ("1000 < total", True),
    ("TOTAL > 1 OR Kind IS NULL", True),  # keywords in any case; field names as written
    ("store != 's002'", False),
    ("total <> 1500", False),
    ("kind != 'x\\'y'", True),
])
def test_meaning(text: str, expected: bool) -> None:
    assert compile_where(text).matches(ROW) is expected


@pytest.mark.parametrize("text", [
    "total = '1500'", "store > 5", "coupon = null", "coupon != 1", "missing != 's001'", "member = 1",
    "total in ['1500']", "coupon not in [1]", "customer = 1", "customer.country < 1",
])
def test_different_kinds_and_nulls_never_compare_true(text: str) -> None:
    assert compile_where(text).matches(ROW) is False


@pytest.mark.parametrize("text, message", [
    ("total > 1000 and store != 's001')", "unexpected ')' at column 33"),
    ("(total > 1000", "expected ')', found the end of the expression at column 14"),
    ("total >", "expected a field or a value, found the end of the expression at column 8"),
    ("store = 's001", "unterminated string starting with ' at column 9"),
    ("total > 1000 &", "unexpected '&' at column 14"),
    ("kind in ('a')", "expected '[' starting a list, found '(' at column 9"),
    ("kind in [a]", "a list holds literals only, found 'a' at column 10"),
    ("kind in [null]", "null in a list never matches (use 'is null') at column 10"),
    ("kind is 'x'", "expected null after 'is', found \"'x'\" at column 9"),
    ("", "empty expression at column 1"),
    ("   ", "empty expression at column 1"),
    ("a = 'b\\q'", "unknown escape \\q in a string at column 7"),
    ("a > 1e999", "number 1e999 is out of range at column 5"),
    ("a > " + "9" * 200, "number is too long at column 5"),
    ("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1), f"nested deeper than {MAX_DEPTH} levels at column 65"),
    ("not " * (MAX_DEPTH + 1) + "a", f"nested deeper than {MAX_DEPTH} levels at column 257"),
])
def test_refused_with_the_column(text: str, message: str) -> None:
    with pytest.raises(WhereError) as err:
        compile_where(text)
    assert str(err.value) == message


def test_complement_splits_every_row_exactly() -> None:
    w = compile_where("total > 1000 and store != 's001'")
    n = compile_where("not (total > 1000 and store != 's001')")
    rows: list[dict[str, Any]] = [{"total": t, "store": s} for t in (5, 1000, 1001, "2000", None, 1e9, float("nan"))
                                  for s in ("s001", "s002", None, 3)] + [{}]
    for row in rows:
        assert w.matches(row) != n.matches(row), row


# --- hypothesis: any text parses or is refused with WhereError; evaluation never raises ----------

_pieces = st.sampled_from(["a", "b.c", "`x y`", "and", "or", "not", "in", "is", "null", "true", "false", "(", ")",
                           "[", "]", ",", "=", "==", "!=", "<>", "<", "<=", ">", ">=", "1", "-2.5", "1e3", "'s'",
                           '"t"', "'", '"', "`", "\\", " ", "\n", "é", "\x00", "\ud800"])
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
    | st.decimals(allow_nan=True, allow_infinity=True) | st.integers(min_value=2**64, max_value=2**80),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "c", "x y"]), inner, max_size=3),
    max_leaves=8)
_rows = st.dictionaries(st.sampled_from(["a", "b", "x y", "c"]), _values, max_size=4)


def _parse_or_refuse(text: str) -> Any:
    try:
        return compile_where(text)
    except WhereError as exc:
        assert 1 <= exc.column <= len(text) + 1
        return None


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60))
def test_any_text_parses_or_is_refused_with_a_column(text: str) -> None:
    _parse_or_refuse(text)


@settings(max_examples=600, deadline=None)
@given(st.lists(_pieces, max_size=25).map(" ".join), st.lists(_rows, max_size=4))
def test_any_expression_evaluates_to_a_bool_without_raising(text: str, rows: list[dict[str, Any]]) -> None:
    w = _parse_or_refuse(text)
    if w is None:
        return
    negated = compile_where(f"not ({text})")
    for row in rows:
        result = w.matches(row)
        assert result is True or result is False
        assert negated.matches(row) is (not result)


_literals = st.sampled_from(["1", "-2.5", "1e3", "0", "'s'", "''", "true", "false", "null", "9.9", "10"])
_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3) | st.decimals() \
    | st.sampled_from([Decimal("9.90"), Decimal("NaN"), Decimal("sNaN"), 10, 9.9, "s", ""])


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), _literals, _scalars)
def test_the_top_level_fast_path_agrees_with_the_general_one(op: str, literal: str, value: Any) -> None:
    row = {"b": value, "a": {"b": value}}
    fast = compile_where(f"b {op} {literal}").matches(row)
    general = compile_where(f"a.b {op} {literal}").matches(row)
    assert fast is general


def test_long_chains_evaluate_without_deep_recursion() -> None:
    chain = " and ".join(["a = 1"] * 990)
    assert compile_where(chain).matches({"a": 1}) is True
    assert compile_where(" or ".join(["a = 2"] * 990)).matches({"a": 1}) is False
