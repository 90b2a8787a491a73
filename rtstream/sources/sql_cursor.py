"""The `sql` source's cursor: which rows of a page are read now, and the position they advance to.

A page is cut so that no row can be skipped by the next `WHERE c > :cursor` (or `(c, t) > (:cursor,
:tiebreak)`):
- values are compared as the driver returns them (a timestamptz as a datetime, to the microsecond),
  never as their text, and a value of another kind than the cursor is refused with one line;
- without a tiebreak, a full page (LIMIT reached) leaves its last cursor value for the next poll:
  rows sharing it past the LIMIT would otherwise be skipped by `> :cursor`;
- `settle` holds back rows that an open transaction may still precede: a timestamp newer than now -
  settle (Kafka Connect JDBC's `timestamp.delay.interval.ms`), or an integer past a gap in the values
  until the gap has been open for `settle` (an id taken by a transaction that has not committed yet;
  one rolled back leaves a gap for good, passed after `settle`).
Rows at or before the cursor (a query with `>=`) were read already and are dropped.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

_TEXT_TYPES = {"text", "varchar", "bpchar", "name", "citext", "unknown"}
_INT_TYPES = {"int2", "int4", "int8", "oid"}


class CursorError(ValueError):
    """The cursor and the rows (or the query's parameter) do not match; the message is the whole story."""


def kind(v: Any) -> str:
    """What a cursor value is, for telling whether two values compare."""
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float | Decimal):
        return "number"
    if isinstance(v, str):
        return "text"
    if isinstance(v, dt.datetime):
        return "timestamp with time zone" if v.tzinfo is not None else "timestamp"
    if isinstance(v, dt.date):
        return "date"
    return type(v).__name__


def to_marker(v: Any) -> Any:
    """`v` as JSON that `from_marker` turns back into the same type (the spool keeps the cursor)."""
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, dt.datetime):
        return {"datetime": v.isoformat()}
    if isinstance(v, dt.date):
        return {"date": v.isoformat()}
    if isinstance(v, Decimal):
        return {"decimal": str(v)}
    if isinstance(v, uuid.UUID):
        return {"uuid": str(v)}
    if isinstance(v, bytes | bytearray | memoryview):
        return {"bytes": bytes(v).hex()}
    raise CursorError(f"a cursor of type {type(v).__name__} cannot be kept")


def from_marker(doc: Any) -> Any:
    if not isinstance(doc, dict):
        return doc
    ((t, text),) = doc.items()
    parse: dict[str, Callable[[str], Any]] = {"datetime": dt.datetime.fromisoformat, "date": dt.date.fromisoformat,
                                              "decimal": Decimal, "uuid": uuid.UUID, "bytes": bytes.fromhex}
    return parse[t](text)


def bind(value: Any, pg_type: str | None) -> Any:
    """`value` as the Python type asyncpg wants for a parameter of `pg_type`; CursorError if it is not one."""
    if value is None or pg_type is None:
        return value
    k = kind(value)
    if pg_type in _TEXT_TYPES:
        if k == "text":
            return value
        if isinstance(value, dt.date):  # a timestamp compared as text (`:cursor::text::timestamptz`)
            return value.isoformat()
    elif pg_type in ("timestamptz", "timestamp"):
        if isinstance(value, dt.datetime):
            return value
        if k == "text":
            try:
                return dt.datetime.fromisoformat(value)
            except ValueError:
                pass
    elif pg_type == "date":
        if k == "date":
            return value
        if k == "text":
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
    elif pg_type in _INT_TYPES:
        if k == "number" and value == int(value):
            return int(value)
    elif pg_type == "numeric":
        if k == "number":
            return Decimal(str(value))
    elif pg_type in ("float4", "float8"):
        if k == "number":
            return float(value)
    elif pg_type == "uuid":
        try:
            return uuid.UUID(str(value))
        except ValueError:
            pass
    else:
        return value  # a type this does not know: the driver decides
    raise CursorError(f"{value!r} is {k}, but the query compares it with {pg_type}")


def _start_as(start: str, sample: Any) -> Any:
    """A cursor_start given as text, as the type of the column's values (a timestamp given in ISO-8601)."""
    try:
        if isinstance(sample, dt.datetime):
            t = dt.datetime.fromisoformat(start)
            if sample.tzinfo is None and t.tzinfo is not None:
                t = t.astimezone(dt.UTC).replace(tzinfo=None)  # a timestamp without time zone is taken as UTC
            return t
        if isinstance(sample, dt.date):
            return dt.date.fromisoformat(start)
    except ValueError:
        pass
    return start  # left as it is: _check tells what it should be


def _hint(k: str) -> str:
    return {"timestamp with time zone": 'e.g. "1970-01-01T00:00:00Z"', "timestamp": 'e.g. "1970-01-01T00:00:00"',
            "date": 'e.g. "1970-01-01"', "text": 'e.g. ""', "number": "e.g. 0"}.get(k, "a value of that type")


@dataclass
class Cursor:
    """The position reached: `value` of the cursor column (and `tiebreak` of the tiebreak column)."""

    column: str
    tiebreak_field: str | None
    value: Any
    tiebreak: Any = None
    settle: float = 0.0
    start_key: str = "cursor_start"  # the dotted key a wrong-typed start is blamed on
    started: bool = False  # the value came from the spool, not from the config
    gaps: dict[int, float] = field(default_factory=dict)  # first missing integer -> when first seen (monotonic)

    def marker(self) -> dict[str, Any]:
        doc = {"cursor": to_marker(self.value)}
        if self.tiebreak_field:
            doc["tiebreak"] = to_marker(self.tiebreak)
        return doc

    def _check(self, v: Any, current: Any, column: str) -> None:
        if current is None or v is None or kind(v) == kind(current):
            return
        if self.started or column != self.column:
            raise CursorError(f"{column} holds {kind(v)} ({v!r}), but the cursor is {kind(current)} ({current!r}): "
                              "the column's type changed since the cursor was saved")
        raise CursorError(f"{self.start_key}: {current!r} is {kind(current)}, but {column} holds {kind(v)} ({v!r}): "
                          f"give {self.start_key} as {kind(v)}, {_hint(kind(v))}")

    def _after(self, c: Any, t: Any) -> bool:
        """Whether (c, t) comes after the cursor, so it has not been read yet."""
        if self.value is None or c > self.value:
            return True
        if c < self.value or self.tiebreak_field is None:
            return False
        return self.tiebreak is None or (t is not None and t > self.tiebreak)

    def take(self, rows: list[dict[str, Any]], full: bool) -> tuple[list[dict[str, Any]], bool]:
        """The rows to read now, in their order, and whether `settle` held some back for a later poll.
        Advances the cursor past the rows taken. CursorError when the page cannot move the cursor."""
        f, tf = self.column, self.tiebreak_field
        if rows and not self.started and isinstance(self.value, str):
            self.value = _start_as(self.value, rows[0].get(f))
        fresh = []
        for r in rows:
            c = r.get(f)
            self._check(c, self.value, f)
            if tf:
                self._check(r.get(tf), self.tiebreak, tf)
            if c is None or self._after(c, r.get(tf) if tf else None):
                fresh.append(r)
        if rows and not fresh:
            raise CursorError(f"the query returned rows but none is past {f} = {self.value!r}: does it filter on "
                              f"{'(' + f + ', ' + tf + ') > (:cursor, :tiebreak)' if tf else '> :cursor'}, "
                              "and select the cursor column?")
        values = [r[f] for r in fresh if r.get(f) is not None]
        if not values:
            return fresh, False
        bound: Any = None  # rows whose cursor value is at or past it wait for a later poll
        if full and not tf:
            bound = max(values)
        held = self._settle_bound(values)
        if held is not None and (bound is None or held < bound):
            bound = held
        settling = held is not None and bound is held  # rows wait for settle, not only for the next page
        taken = fresh if bound is None else [r for r in fresh if r.get(f) is None or r[f] < bound]
        if not any(r.get(f) is not None for r in taken):
            if bound == max(values) and held is None:
                raise CursorError(f"more rows share {f} = {bound!r} than the query's LIMIT: set tiebreak_field "
                                  "(a unique column, e.g. id) and filter on (cursor, tiebreak), or raise the LIMIT")
            return [r for r in taken if r.get(f) is None], settling
        last = max((r for r in taken if r.get(f) is not None),
                   key=lambda r: (r[f], r.get(tf) is not None, r.get(tf)) if tf else (r[f],))
        self.value = last[f]
        if tf:
            self.tiebreak = last.get(tf)
        self.gaps = {k: t for k, t in self.gaps.items() if k > self.value} if isinstance(self.value, int) else {}
        return taken, settling

    def _settle_bound(self, values: list[Any]) -> Any:
        """The first value `settle` holds back, or None."""
        if self.settle <= 0:
            return None
        first = values[0]
        if isinstance(first, dt.datetime):
            now = dt.datetime.now(dt.UTC)
            if first.tzinfo is None:
                now = now.replace(tzinfo=None)  # a timestamp without time zone is taken as UTC
            cut = now - dt.timedelta(seconds=self.settle)
            return cut if any(v >= cut for v in values) else None
        if isinstance(first, int) and not self.tiebreak_field and isinstance(self.value, int):
            now_m = time.monotonic()
            expected = self.value + 1
            for v in sorted(set(values)):
                if v > expected:  # expected .. v-1 missing: in flight, or rolled back
                    seen = self.gaps.setdefault(expected, now_m)
                    if now_m - seen < self.settle:
                        return v
                expected = v + 1
            return None
        raise CursorError(f"settle needs a timestamp cursor, or an integer one without tiebreak_field; "
                          f"{self.column} is {kind(first)}")
