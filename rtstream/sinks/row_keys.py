"""What identifies a row in a table sink (sqlite, postgres), and the rows a key cannot tell apart.

A window's rows are written idempotently as a whole, one of two ways:
- **by key**: the rows have a key (an aggregate's `key`, a session's `key`, or the sink's
  `key_columns`) and the table's primary key is the window's fields plus it; a replay upserts the
  same rows. A key is only a key if it is unique among the window's rows: rows that share one are
  refused together (to the dead letters, with the key and why) rather than one silently kept.
- **by window**: the rows have no key (a join's pairs, a `keyed` or `python` stage's outputs, the
  raw records of a window with no aggregate): the sink deletes the window's rows (by its
  `window_fields`: `window_start`, `window_end`, and `window_id` for count windows) and inserts
  them again in one transaction, so a replay that rebuilds the window leaves exactly its rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rtstream.model.errors import SinkError

Rejected = list[tuple[list[dict[str, Any]], str]]  # (rows, why), as RowsRejected takes them


def upsert_keys(key_columns: list[str] | None, window_fields: list[str], key_fields: list[str]) -> list[str]:
    """The columns a table sink upserts by; empty when the rows have no key (replace the window)."""
    if key_columns:
        return list(key_columns)
    if not key_fields:
        return []
    return [*window_fields, *(k for k in key_fields if k not in window_fields)]


def replace_fields(window_fields: list[str], columns: list[str]) -> list[str]:
    """The columns a window's rows are deleted by before they are inserted again: the window's
    fields (and `window_end`, which tells hopping windows of one start apart) the table has."""
    wanted = [*window_fields, "window_end"]
    return [c for c in dict.fromkeys(wanted) if c in columns]


def window_deletes(sink: str, target: str, table: str, window_fields: list[str], cols: list[str],
                   values: list[tuple[Any, ...]], mark: Callable[[int], str]) -> tuple[str, list[tuple[Any, ...]]]:
    """The DELETE of a window's rows before they are inserted again, and its parameters (one tuple
    per window among `values`, a row's column values in `cols` order); `mark(i)` spells the i-th
    placeholder ("?" for SQLite, "$1" for PostgreSQL)."""
    fields = replace_fields(window_fields, cols)
    if "window_start" not in fields:
        raise SinkError(sink, f"table {table!r} has no window_start column: rows without a key are replaced per "
                              "window (or set key_columns, or mode = \"insert\")")
    at = [cols.index(c) for c in fields]
    where = " AND ".join(f"{_quote(c)} = {mark(i)}" for i, c in enumerate(fields))
    return f"DELETE FROM {target} WHERE {where}", list(dict.fromkeys(tuple(v[i] for i in at) for v in values))


def window_index(target: str, table: str) -> str:
    """The index a table of rows without a key is given: each window's rows are found by their start."""
    return f"CREATE INDEX IF NOT EXISTS {_quote(table[:50] + '_window')} ON {target} (\"window_start\")"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _as_the_database_compares(value: Any) -> Any:
    """A key value as a table compares it, erring towards equal (a false collision is refused
    loudly; a missed one would silently keep one row): True is 1, 1.0 is 1, and "1" is 1 (SQLite's
    column affinity makes them one value); objects and lists by their text."""
    if value.__class__ is bool:
        value = int(value)
    if value.__class__ is float and value.is_integer():
        value = int(value)
    if isinstance(value, (int, float, str)):
        return str(value)
    return repr(value)


def unique_rows(rows: list[dict[str, Any]], keys: list[str]) -> tuple[list[dict[str, Any]], Rejected]:
    """The rows whose key no other row of the window shares, and the others with why: every row of a
    shared key, and a row with a null in its key (NULL never equals NULL: a replay would add it
    again). One pass, no copy when every key is unique and whole."""
    seen: dict[tuple[Any, ...], int] = {}
    nulls = False
    for r in rows:
        values = [r.get(c) for c in keys]
        if None in values:
            nulls = True
            continue
        k = tuple(_as_the_database_compares(v) for v in values)
        seen[k] = seen.get(k, 0) + 1
    if not nulls and len(seen) == len(rows):
        return rows, []
    good: list[dict[str, Any]] = []
    shared: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    names = ", ".join(keys)
    rejected: Rejected = []
    for r in rows:
        values = [r.get(c) for c in keys]
        if None in values:
            column = keys[values.index(None)]
            rejected.append(([r], f"key column {column!r} is null or missing in this row: an upsert by ({names}) "
                                  f"cannot find it again, so a replay would add it twice"))
            continue
        k = tuple(_as_the_database_compares(v) for v in values)
        if seen[k] == 1:
            good.append(r)
        else:
            shared.setdefault(k, []).append(r)
    for group in shared.values():
        values_text = ", ".join(shown(group[0].get(c)) for c in keys)
        rejected.append((group, f"{len(group)} rows of this window share the key ({names}) = ({values_text}): an "
                                f"upsert would keep one of them; make key_columns unique per row, or leave it unset "
                                f"to replace each window's rows whole"))
    return good, rejected


def shown(v: Any) -> str:
    """A value quoted in a reason: bounded, whatever it holds."""
    try:
        text = repr(v) if not isinstance(v, int) or abs(v) < 10**100 else f"an int of {v.bit_length()} bits"
    except Exception:  # noqa: BLE001 - repr of a user's object may do anything
        text = f"a {type(v).__name__}"
    return text if len(text) <= 200 else text[:200] + "…"
