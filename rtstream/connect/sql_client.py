"""Queries against SQLite or PostgreSQL with `:name` parameters, for the `sql` source and the
`lookup` stage. Rows come back as dicts of JSON-friendly values (timestamps as ISO-8601 text,
decimals as numbers), so they travel through the spool and the windows like any record.

DSNs: `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`, `postgresql://user:pw@host/db`.
PostgreSQL needs asyncpg (`pip install 'rtstream[postgres]'`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import re
import sqlite3
import uuid
from collections.abc import Hashable
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from rtstream.connect import pg_time
from rtstream.model.errors import RtstreamError

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")  # :name, but not a ::cast


class SqlError(RtstreamError):
    """A query failed, or the database cannot be reached."""


class KeyRejected:
    """The answer for a key whose own value made its query fail (text against an integer column, a
    number out of the column's range): that key's records are dead-lettered with `reason`, while a
    failure of the database itself raises, and is retried."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason


TypedKey = tuple[type, Hashable]  # (type, value): true, 1 and 1.0 are three keys, each sent as its type
_KEY_TYPE_ERRORS = ("42804", "42883", "42725")  # datatype mismatch, no such operator, ambiguous operator


def _caused_by_key(exc: BaseException) -> bool:
    """Whether a PostgreSQL error comes from the values bound, not from the database or the query:
    a data exception (class 22), a type the query's operators do not take, or a value asyncpg
    cannot encode as the parameter's type."""
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str):
        return state.startswith("22") or state in _KEY_TYPE_ERRORS
    return type(exc).__name__ == "DataError"  # asyncpg's own, raised before anything is sent


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}"


def dsn_kind(dsn: str) -> str:
    if dsn.startswith("sqlite:///"):
        return "sqlite"
    if dsn.startswith(("postgresql://", "postgres://")):
        return "postgres"
    raise ValueError("dsn must start with sqlite:/// or postgresql://")


def parameters(query: str) -> set[str]:
    return set(_NAMED.findall(query))


def json_friendly(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None and value.utcoffset() == dt.timedelta(0):
            return value.replace(tzinfo=None).isoformat() + "Z"
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        # a number where JSON holds one (an int within 64 bits, else a finite float: 1e30 as 1e+30);
        # Infinity, NaN and 1e400 as their exact text, never an error that stops the fetch
        if value.is_finite() and value == value.to_integral_value() and -(1 << 63) <= value < (1 << 63):
            return int(value)
        as_float = float(value)
        return as_float if math.isfinite(as_float) else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


class SqlClient:
    def __init__(self, dsn: str, component: str):
        self.dsn = dsn
        self.kind = dsn_kind(dsn)
        self.component = component
        self._sqlite: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()  # one SQLite connection, used by one thread at a time
        self._pool: Any = None

    async def start(self) -> None:
        if self.kind == "sqlite":
            path = Path(self.dsn.removeprefix("sqlite:///"))
            if not path.exists():
                raise SqlError(f"{self.component}: no SQLite database at {path}")
            self._sqlite = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, check_same_thread=False)
            self._sqlite.row_factory = sqlite3.Row
            return
        try:
            import asyncpg
        except ImportError:
            raise SqlError(f"{self.component} needs asyncpg: pip install 'rtstream[postgres]'") from None
        try:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4, init=pg_time.install)
        except (OSError, asyncpg.PostgresError) as exc:
            raise SqlError(f"{self.component}: cannot connect to PostgreSQL: {type(exc).__name__}") from None

    async def fetch(self, query: str, params: dict[str, Any], raw: bool = False) -> list[dict[str, Any]]:
        """Every row of `query` with `params` bound by name, read in a read-only transaction (SQLite
        is opened read-only): a query that writes fails instead of changing the table. `raw`: the
        values as the driver gives them (for comparing cursors by their real type)."""
        if self._sqlite is not None:
            async with self._lock:
                return await asyncio.to_thread(self._sqlite_fetch, query, params, raw)
        names = list(dict.fromkeys(_NAMED.findall(query)))
        sql = _NAMED.sub(lambda m: f"${names.index(m.group(1)) + 1}", query)
        import asyncpg

        try:
            async with self._pool.acquire() as conn, conn.transaction(readonly=True):
                rows = await conn.fetch(sql, *(params[n] for n in names))
        except asyncpg.ReadOnlySQLTransactionError as exc:
            raise SqlError(f"{self.component}: the query must only read: PostgreSQL refused it in a read-only "
                           f"transaction ({exc})") from None
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise SqlError(f"{self.component}: {type(exc).__name__}: {exc}") from None
        if raw:
            return [dict(r.items()) for r in rows]
        return [{k: json_friendly(v) for k, v in r.items()} for r in rows]

    async def parameter_types(self, query: str) -> dict[str, str]:
        """The type PostgreSQL gives each `:name` of `query` (`timestamptz`, `text`, `int8`, ...), from
        preparing it without running it; empty for SQLite, whose parameters take any type."""
        if self._sqlite is not None:
            return {}
        import asyncpg

        names = list(dict.fromkeys(_NAMED.findall(query)))
        sql = _NAMED.sub(lambda m: f"${names.index(m.group(1)) + 1}", query)
        try:
            async with self._pool.acquire() as conn:
                stmt = await conn.prepare(sql)
                types = stmt.get_parameters()
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise SqlError(f"{self.component}: the query does not prepare: {type(exc).__name__}: {exc}") from None
        return {n: t.name for n, t in zip(names, types, strict=False)}

    async def fetch_by_key(self, query: str, keys: list[TypedKey],
                           found: dict[TypedKey, dict[str, Any] | KeyRejected | None]) -> None:
        """Into `found`, the first row of `query` for each key bound to `:key` (None: no row; a
        KeyRejected when the key's own value made the query fail), in one round trip per type of key
        (booleans, integers, floats, text), each sent as its type. A failure of the database itself
        raises, after the answers that came are in `found`."""
        if self._sqlite is not None:
            async with self._lock:
                error = await asyncio.to_thread(self._sqlite_by_key, query, keys, found)
            if error is not None:
                raise error
            return
        groups: dict[str, dict[Any, TypedKey]] = {}  # array type -> {value sent: the key it stands for}
        for tk in keys:
            kind, k = tk
            if kind is bool:
                groups.setdefault("bool[]", {})[k] = tk
            elif kind is int:
                groups.setdefault("bigint[]" if -(1 << 63) <= cast(int, k) < (1 << 63) else "numeric[]", {})[k] = tk
            elif kind is float:
                groups.setdefault("float8[]", {})[k] = tk
            elif "\x00" in str(k):  # PostgreSQL text holds no NUL: such a key has no row
                found[tk] = None
            else:
                groups.setdefault("text[]", {})[str(k)] = tk
        inner = _NAMED.sub(lambda m: "k.rtstream_key" if m.group(1) == "key" else m.group(0), query)
        for array_type, sent in groups.items():
            # the user's query joined laterally to the list of keys: one query for all of them
            sql = (f"SELECT k.rtstream_key, q.* FROM unnest($1::{array_type}) AS k(rtstream_key) "
                   f"CROSS JOIN LATERAL ({inner}) AS q")
            try:
                rows = await self._pool.fetch(sql, list(sent))
            except Exception as exc:
                if not _caused_by_key(exc):
                    raise  # the database, or the query whatever the key: retried by the stage's policy
                if len(sent) == 1 or getattr(exc, "sqlstate", "") in _KEY_TYPE_ERRORS:
                    found.update((tk, KeyRejected(_why(exc))) for tk in sent.values())  # the type, not the value
                    continue
                for value, tk in sent.items():  # a value of this type failed it: ask for each alone, once
                    try:
                        rows = await self._pool.fetch(sql, [value])
                    except Exception as one:
                        if not _caused_by_key(one):
                            raise
                        found[tk] = KeyRejected(_why(one))
                        continue
                    found[tk] = {c: json_friendly(v) for c, v in rows[0].items() if c != "rtstream_key"} \
                        if rows else None
                continue
            answered: dict[TypedKey, dict[str, Any] | KeyRejected | None] = dict.fromkeys(sent.values())
            for r in rows:
                asked = sent.get(r["rtstream_key"])
                if asked is not None and answered.get(asked) is None:
                    answered[asked] = {c: json_friendly(v) for c, v in r.items() if c != "rtstream_key"}
            found.update(answered)

    def _sqlite_fetch(self, query: str, params: dict[str, Any], raw: bool = False) -> list[dict[str, Any]]:
        assert self._sqlite is not None
        try:
            if raw:
                return [dict(zip(r.keys(), r, strict=True)) for r in self._sqlite.execute(query, params)]
            return [{k: json_friendly(r[k]) for k in r.keys()} for r in self._sqlite.execute(query, params)]
        except (sqlite3.Error, OverflowError) as exc:
            if "readonly" in str(exc):  # opened read-only: a write is refused before it changes anything
                raise SqlError(f"{self.component}: the query must only read: SQLite refused it ({exc})") from None
            raise SqlError(f"{self.component}: {exc}") from None

    def _sqlite_by_key(self, query: str, keys: list[TypedKey],
                       found: dict[TypedKey, dict[str, Any] | KeyRejected | None]) -> SqlError | None:
        """Each key on its own: one whose value cannot be bound (an int beyond 64 bits) is rejected
        alone; an error of the database (locked, no such table) is returned, the others answered."""
        assert self._sqlite is not None
        error = None
        for tk in keys:
            try:
                row = self._sqlite.execute(query, {"key": tk[1]}).fetchone()
            except (OverflowError, sqlite3.InterfaceError) as exc:
                found[tk] = KeyRejected(_why(exc))
                continue
            except sqlite3.Error as exc:
                error = error or SqlError(f"{self.component}: {type(exc).__name__}: {exc}")
                continue
            found[tk] = None if row is None else {k: json_friendly(row[k]) for k in row.keys()}
        return error

    async def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
