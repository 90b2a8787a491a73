"""Python values as PostgreSQL columns take them: the type a new column gets from a value, the
conversion each column type needs (refusing, with why, what the column can never hold), and the
field names that can be columns."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from rtstream.sinks.table_columns import not_an_identifier

WINDOW_COLUMNS = ("window_start", "window_end")
# a user column of one of these names is refused by the server ("conflicts with a system column name")
SYSTEM_COLUMNS = frozenset({"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"})
NAME_BYTES = 63  # PostgreSQL cuts longer names to 63 bytes: two long fields would be one column


def column_name_problem(name: str) -> str | None:
    """Why a field cannot be a column of a table the sink shapes, or None."""
    why = not_an_identifier(name)
    if why is None and len(name) > NAME_BYTES:
        why = f"field {name[:80]!r}... is longer than PostgreSQL's {NAME_BYTES}-byte column names"
    if why is None and name in SYSTEM_COLUMNS:
        why = f"field {name!r} is the name of a PostgreSQL system column"
    return why


def pg_type(column: str, value: Any) -> str:
    if column in WINDOW_COLUMNS:
        return "timestamptz"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "double precision"
    if isinstance(value, (dict, list)):
        return "jsonb"
    return "text"


def _to_timestamp(v: Any) -> datetime:
    return v if isinstance(v, datetime) else datetime.fromisoformat(str(v))


def _to_float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError
    return float(v)


def _int_of(bits: int) -> Callable[[Any], int]:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def to_int(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
            raise TypeError
        n = int(v)
        if not low <= n <= high:
            raise ValueError(f"out of range for a {bits}-bit integer")
        return n

    return to_int


_to_int = _int_of(64)


def _to_bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError
    return v


def _to_text(v: Any) -> str:
    text = v if isinstance(v, str) else orjson.dumps(v, default=str).decode()
    if "\x00" in text:
        raise ValueError("it holds a NUL character (\\x00), which PostgreSQL text cannot store")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("it is not valid unicode (a lone surrogate)") from None
    return text


_JSON_NUL = re.compile(r"(?:^|[^\\])(?:\\\\)*\\u0000")  # an escaped NUL, not an escaped backslash + "u0000"


def _to_json(v: Any) -> str:
    return orjson.dumps(v, default=str).decode()


def _to_jsonb(v: Any) -> str:
    text = _to_json(v)
    if "\\u0000" in text and _JSON_NUL.search(text):
        raise ValueError("it holds a NUL character (\\u0000), which PostgreSQL jsonb cannot store")
    return text


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "timestamp with time zone": _to_timestamp, "timestamp without time zone": _to_timestamp,
    "double precision": _to_float, "real": _to_float, "numeric": _to_float,
    "bigint": _to_int, "integer": _int_of(32), "smallint": _int_of(16),
    "boolean": _to_bool, "jsonb": _to_jsonb, "json": _to_json,
    "text": _to_text, "character varying": _to_text,
}
