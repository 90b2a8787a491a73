"""A window's rows as one object's bytes, and back: Parquet with columns typed from the rows, or JSON
lines.

Parquet (pyarrow, the `parquet` extra). Each column's type is what pyarrow infers from all its
values (ints and floats together make a double; a nested object a struct); `window_start` and
`window_end` become `timestamp[ms, tz=UTC]`. A row holding a value its column cannot hold (an int
beyond 64 bits, a string where the other rows have numbers, text that is not valid UTF-8, a dict
with non-string keys) is refused with the reason, and the table is built from the others: the
column's type is then the one most of its values have. Columns come in the order rows first show
them; a field missing from a row is null.

The bytes depend only on the rows: the same window encodes to the same object (gzip without a
timestamp, Parquet without a creation time), so a replay rewrites an identical object.

Reading an object back (`rows_from`) gives rows as the sink was handed them, window bounds as
ISO-8601 strings again, so that merging a window written in parts re-encodes to the same types.
"""

from __future__ import annotations

import gzip
import io
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from rtstream.engine.decode import decode_json
from rtstream.model.window import Window, iso_utc
from rtstream.sinks.rows import Rejected, encode_row

BOUNDS = ("window_start", "window_end")
MAX_PASSES = 4  # rebuilding after refusals; a second pass is already rare


def require_pyarrow() -> None:
    """Raise ImportError with the pip command when pyarrow is missing."""
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ImportError("format = \"parquet\" needs pyarrow: pip install 'rtstream[parquet]'") from None


def ndjson_bytes(rows: list[dict[str, Any]], gzipped: bool) -> tuple[bytes, int, Rejected]:
    """(body, rows in it, rows refused with why)."""
    rejected: Rejected = []
    lines: list[bytes] = []
    for row in rows:
        line = encode_row(row)
        if isinstance(line, str):
            rejected.append(([row], line))
        else:
            lines.append(line)
    body = b"".join(line + b"\n" for line in lines)
    if gzipped:
        body = gzip.compress(body, compresslevel=6, mtime=0)
    return body, len(lines), rejected


def parquet_bytes(rows: list[dict[str, Any]], window: Window, compression: str,
                  metadata: dict[str, str]) -> tuple[bytes, int, Rejected]:
    """(body, rows in it, rows refused with why)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rejected: Rejected = []
    for _ in range(MAX_PASSES):
        table, bad = _table(rows)
        if not bad:
            break
        rejected.extend(([rows[i]], why) for i, why in sorted(bad.items()))
        rows = [r for i, r in enumerate(rows) if i not in bad]
    else:  # still refusing after several passes: refuse what is left rather than loop
        rejected.extend(([r], "row cannot be typed as Parquet columns") for r in rows)
        rows, table = [], pa.table({})
    assert table is not None
    meta = {**metadata, "rtstream.window_start": window.start_iso, "rtstream.window_end": window.end_iso}
    table = table.replace_schema_metadata(meta)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression=compression)
    return buf.getvalue(), len(rows), rejected


def rows_from(body: bytes, fmt: str, gzipped: bool) -> list[dict[str, Any]]:
    """The rows of an object this module encoded (raises ValueError, or pyarrow's error, on another)."""
    if fmt == "ndjson":
        text = gzip.decompress(body) if gzipped else body
        return [decode_json(line) for line in text.splitlines() if line.strip()]
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = pq.read_table(io.BytesIO(body)).to_pylist()
    for row in rows:
        for name in BOUNDS:
            value = row.get(name)
            if isinstance(value, datetime):
                row[name] = iso_utc((value - _EPOCH) // timedelta(milliseconds=1))
    return rows


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _table(rows: list[dict[str, Any]]) -> tuple[Any, dict[int, str]]:
    """The rows as a pyarrow Table, or the rows (by index) that keep it from being one, with why."""
    import pyarrow as pa

    names: dict[Any, None] = {}
    for row in rows:
        for k in row:
            names.setdefault(k, None)
    columns: dict[str, Any] = {}
    bad: dict[int, str] = {}
    for name in names:
        if not isinstance(name, str):
            bad.update((i, f"field name {name!r} is not a string") for i, r in enumerate(rows) if name in r)
            continue
        values = [row.get(name) for row in rows]
        if name in BOUNDS:
            stamps = _timestamps(values)
            if stamps is not None:
                columns[name] = pa.array(stamps, type=pa.timestamp("ms", tz="UTC"))
                continue
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowException, OverflowError, TypeError, ValueError, UnicodeError):
            refused = _refusals(name, values) or {
                i: f"field {name!r}: the column's values share no Parquet type" for i, v in enumerate(values)
                if v is not None}
            for i, why in refused.items():
                bad.setdefault(i, why)
    if bad:
        return None, bad
    return pa.table(columns), {}


def _timestamps(values: list[Any]) -> list[datetime | None] | None:
    """ISO-8601 window bounds as aware datetimes, or None when any is not one (then kept as it is)."""
    parsed: dict[str, datetime] = {}  # a window's rows share one or two bounds: parse each once
    out: list[datetime | None] = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        dt = parsed.get(v) if v.__class__ is str else None
        if dt is None:
            if not isinstance(v, str):
                return None
            try:
                dt = datetime.fromisoformat(v)
            except ValueError:
                return None
            if dt.tzinfo is None:
                return None
            parsed[v] = dt
        out.append(dt)
    return out


def _refusals(name: str, values: list[Any]) -> dict[int, str]:
    """Which values keep the column from having one type: those pyarrow cannot hold at all, then
    those that do not fit the type most of the others have."""
    import pyarrow as pa

    alone: dict[int, Any] = {}
    bad: dict[int, str] = {}
    for i, v in enumerate(values):
        if v is None:
            continue
        try:
            alone[i] = pa.array([v]).type
        except (pa.ArrowException, OverflowError, TypeError, ValueError, UnicodeError) as exc:
            bad[i] = f"field {name!r}: Parquet cannot hold this {type(v).__name__}: {_short(exc)}"
    kinds = Counter(str(t) for t in alone.values())
    if len(kinds) > 1:
        numeric = {"int64", "double"}
        if set(kinds) <= numeric:
            return bad  # pyarrow makes a double of them; only the unholdable values were the trouble
        target_name = kinds.most_common(1)[0][0]
        target = next(t for t in alone.values() if str(t) == target_name)
        for i, t in alone.items():
            if str(t) == target_name or (str(t) in numeric and target_name in numeric):
                continue
            try:
                pa.array([values[i]], type=target)
            except (pa.ArrowException, OverflowError, TypeError, ValueError):
                bad[i] = f"field {name!r}: {type(values[i]).__name__} value in a column of {target_name}"
    return bad


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."
