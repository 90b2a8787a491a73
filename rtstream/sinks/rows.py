"""Rows a JSON-writing sink can never write, found before the write so that only they are refused.

orjson refuses an int beyond 64 bits, nesting deeper than 254 levels and a dict key that is not a
string; such a row would fail every attempt, so the sinks that write JSON (file, http, stdout) hand
it to the dead letters (`RowsRejected`) and write the rest. Values of other types are written as
their `str` (`default=str`), and NaN and infinities as `null`, as orjson (and `JSON.stringify`) do:
JSON has no spelling for them.
"""

from __future__ import annotations

from typing import Any

import orjson

Rejected = list[tuple[list[dict[str, Any]], str]]  # (rows, why), as RowsRejected takes them


def encode_row(row: Any) -> bytes | str:
    """The row as one JSON document, or why it cannot be one."""
    try:
        return orjson.dumps(row, default=str)
    except (TypeError, orjson.JSONEncodeError) as exc:
        return f"row cannot be encoded as JSON: {str(exc)[:200]}"


def encodable_rows(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Rejected]:
    """The rows that encode inside a JSON array (one level deeper than alone), and the others with
    why; one pass over the whole list when all do."""
    try:
        orjson.dumps(rows, default=str)
        return rows, []
    except (TypeError, orjson.JSONEncodeError):
        pass
    good: list[dict[str, Any]] = []
    bad: Rejected = []
    for row in rows:
        out = encode_row([row])
        if isinstance(out, str):
            bad.append(([row], out))
        else:
            good.append(row)
    return good, bad
