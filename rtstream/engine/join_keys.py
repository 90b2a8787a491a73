"""The one rule by which the three joins (`join`, `interval_join`, `table_join`) match keys.

The rule is SQL's and the `where` language's (rtstream.where.predicates):
- a record without the key field cannot be joined at all: `join_key` raises, and the fold
  dead-letters that record with the reason (`missing key field 'orderid'`), so a typo in `on` is
  loud, not a silent cross join;
- a null key (or a NaN number) never equals anything, not even another null: `join_key` returns
  `NO_MATCH`, and the join treats the row as one without a partner (a left join emits it alone);
- a list or an object is no key: `join_key` raises for that record alone;
- values match only within their own kind: a boolean never matches a number (`true` is not `1`), a
  string never matches a number (`"2"` is not `2`), and numbers compare as numbers, so `2`, `2.0`
  and a SQL source's `Decimal("2")` are the same JSON number and match (as `where` compares them).

A key is the value itself for strings and numbers (Python's dict already keeps `"2"` apart from `2`
and puts `2` with `2.0`), so the state of a checkpoint taken before this rule restores unchanged;
only booleans are tagged, since Python counts `True` as `1`.
"""

from __future__ import annotations

import dataclasses
import math
from decimal import Decimal
from typing import Any

import orjson

NO_MATCH: Any = None  # the key of a row that matches nothing (a null or NaN key)


@dataclasses.dataclass(frozen=True)
class LoneKey:
    """What an interval left join keeps a null-keyed left row under: no right row has it (it goes
    out alone, as SQL's left join gives it). Its partition and offset make it the row's own."""
    source: str
    partition: Any
    offset: int

_TRUE, _FALSE = ("bool", True), ("bool", False)  # a tuple: no JSON string or number equals it
_SCALARS = frozenset({str, int})


class _Absent:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<absent>"


_ABSENT: Any = _Absent()


def join_key(value: dict[str, Any], field: str) -> Any:
    """The key of `value` by `field`: a hashable key, or `NO_MATCH`; raises ValueError when the row has
    no such field or its value cannot be a key (a list or an object)."""
    key = value.get(field, _ABSENT)
    cls = key.__class__
    if cls in _SCALARS:  # the common case first: no more checks
        return key
    if key is None:
        return NO_MATCH
    if key is _ABSENT:
        raise ValueError(f"missing key field {field!r}")
    if cls is bool:
        return _TRUE if key else _FALSE
    if cls is float:
        return NO_MATCH if math.isnan(key) else key
    if cls is Decimal:
        return NO_MATCH if key.is_nan() else key
    if cls in (dict, list, tuple, set):
        raise ValueError(f"key field {field!r} must be a string, number or boolean, got {_kind(key)}")
    try:
        hash(key)
    except TypeError:
        raise ValueError(f"key field {field!r} must be a string, number or boolean, got {_kind(key)}") from None
    return key  # another scalar a source decoded (a date, bytes): matches values equal to it


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list"}.get(value.__class__, type(value).__name__)


def tombstone_key(record_key: Any, present: Any) -> Any:
    """The table key a tombstone's record key deletes: the key as text, or, when the table has no such
    entry, the JSON number or boolean that text spells (a changelog keyed by an integer `id` carries
    `b"5"` for the entry of `5`). `present` is the table's keys (anything with `in`)."""
    text = record_key.decode("utf-8", "replace") if isinstance(record_key, bytes) else record_key
    if not isinstance(text, str) or text in present:
        return text
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    if isinstance(parsed, (bool, int, float)):
        key = join_key({"k": parsed}, "k")
        if key is not NO_MATCH and key in present:
            return key
    return text
