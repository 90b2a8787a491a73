"""A window's rows as one object's bytes, and back: Parquet with columns typed from the rows, or JSON
lines.

Parquet (pyarrow, the `parquet` extra). Each column's type is what pyarrow infers from all its
values (ints and floats together make a double; a nested object a struct); `window_start` and
`window_end` become `timestamp[ms, tz=UTC]`. A row holding a value its column cannot hold (an int
beyond 64 bits, a string where the other rows have numbers, text that is not valid UTF-8, a dict
with non-string keys) is refused with the reason, and the table is built from the others: the
column's type is then the one most of its values have. Columns come in the order rows first show
them; a field missing from a row is null.

A column whose values Parquet could store only in a way no reader gets back (an empty object `{}`,
a struct with no fields, anywhere in it; nesting deeper than pyarrow's reader takes, 100 schema
levels, about 49 nested lists) is written as JSON text instead, one document per value, marked
`rtstream.json` in the field's metadata, and read back as the values themselves; a value that is not
JSON either (nested beyond 254 levels) refuses its row. The decision is made for each object from
all the rows it holds, those already in it included when a window is merged, and every object is
checked to open with pyarrow before it is handed back: none is ever written unreadable.

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

import orjson

from rtstream.engine.decode import decode_json
from rtstream.model.window import Window, iso_utc
from rtstream.sinks.rows import Rejected, encode_row

BOUNDS = ("window_start", "window_end")
JSON_FIELD = b"rtstream.json"  # field metadata: the column holds each value as JSON text
MAX_SCHEMA_DEPTH = 100  # pyarrow's reader refuses a deeper Parquet schema (its schema depth limit)
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
    body = buf.getvalue()
    try:  # the footer is what a reader parses first, and where a schema too deep is refused: cheap
        pq.ParquetFile(io.BytesIO(body)).schema_arrow  # noqa: B018 - parsing it is the check
    except Exception as exc:  # noqa: BLE001 - never store what cannot be read back
        raise ValueError(f"the window's Parquet object would not read back with pyarrow: {_short(exc)}") from exc
    return body, len(rows), rejected


def rows_from(body: bytes, fmt: str, gzipped: bool) -> list[dict[str, Any]]:
    """The rows of an object this module encoded (raises ValueError, or pyarrow's error, on another)."""
    if fmt == "ndjson":
        text = gzip.decompress(body) if gzipped else body
        return [decode_json(line) for line in text.splitlines() if line.strip()]
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(body))
    rows: list[dict[str, Any]] = table.to_pylist()
    for f in table.schema:
        if f.metadata and JSON_FIELD in f.metadata:
            for row in rows:
                if row.get(f.name) is not None:
                    row[f.name] = decode_json(row[f.name])
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
    json_columns: set[str] = set()
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
        as_text = False
        try:
            columns[name] = pa.array(values)
            as_text = not _readable(columns[name].type)
        except (pa.ArrowException, OverflowError, TypeError, ValueError, UnicodeError):
            # nested values with no common type (lists of different depths, mixed items): JSON text
            # holds them all, where refusing some would drop rows that a merge had read back
            as_text = any(v.__class__ is dict or v.__class__ is list for v in values)
            if not as_text:
                refused = _refusals(name, values) or {
                    i: f"field {name!r}: the column's values share no Parquet type" for i, v in enumerate(values)
                    if v is not None}
                for i, why in refused.items():
                    bad.setdefault(i, why)
        if as_text:
            texts, refused = _json_texts(name, values)
            columns[name] = pa.array(texts, type=pa.string())
            json_columns.add(name)
            for i, why in refused.items():
                bad.setdefault(i, why)
    if bad:
        return None, bad
    fields = [pa.field(n, a.type, metadata={JSON_FIELD: b"1"} if n in json_columns else None)
              for n, a in columns.items()]
    return pa.Table.from_arrays(list(columns.values()), schema=pa.schema(fields)), {}


def _readable(arrow_type: Any, depth: int = 2) -> bool:
    """Whether a column of this type is written so that pyarrow reads it back: no struct without
    fields (the writer refuses it) and no deeper than the reader's schema limit. `depth` counts the
    schema root and this node; a list or a map takes two Parquet levels (its group, its repeated
    group), a struct one."""
    import pyarrow.types as pt

    if depth > MAX_SCHEMA_DEPTH:
        return False
    if pt.is_struct(arrow_type):
        return arrow_type.num_fields > 0 and all(_readable(arrow_type.field(i).type, depth + 1)
                                                 for i in range(arrow_type.num_fields))
    if pt.is_map(arrow_type):
        return _readable(arrow_type.key_type, depth + 2) and _readable(arrow_type.item_type, depth + 2)
    if pt.is_list(arrow_type) or pt.is_large_list(arrow_type) or pt.is_fixed_size_list(arrow_type):
        return _readable(arrow_type.value_type, depth + 2)
    return True


def _json_texts(name: str, values: list[Any]) -> tuple[list[str | None], dict[int, str]]:
    """Each value as its JSON text (None stays null), and the values JSON cannot hold, with why."""
    texts: list[str | None] = []
    bad: dict[int, str] = {}
    for i, v in enumerate(values):
        if v is None:
            texts.append(None)
            continue
        try:
            texts.append(orjson.dumps(v).decode())
        except (TypeError, orjson.JSONEncodeError) as exc:
            texts.append(None)
            bad[i] = f"field {name!r}: neither a Parquet column nor JSON text can hold it: {_short(exc)}"
    return texts, bad


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
