"""Queries against SQLite or PostgreSQL with `:name` parameters, for the `sql` source and the
`lookup` stage. Rows come back as dicts of JSON-friendly values (timestamps as ISO-8601 text,
decimals as numbers), so they travel through the spool and the windows like any record.

DSNs: `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`, `postgresql://user:pw@host/db`.
PostgreSQL needs asyncpg (`pip install 'rtstream[postgres]'`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import sqlite3
import uuid
from collections.abc import Hashable
from decimal import Decimal
from pathlib import Path
from typing import Any

from rtstream.errors import RtstreamError

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")  # :name, but not a ::cast


class SqlError(RtstreamError):
    """A query failed, or the database cannot be reached."""


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
        return int(value) if value == value.to_integral_value() else float(value)
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
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4)
        except (OSError, asyncpg.PostgresError) as exc:
            raise SqlError(f"{self.component}: cannot connect to PostgreSQL: {type(exc).__name__}") from None

    async def fetch(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every row of `query` with `params` bound by name."""
        if self._sqlite is not None:
            async with self._lock:
                return await asyncio.to_thread(self._sqlite_fetch, query, params)
        names = list(dict.fromkeys(_NAMED.findall(query)))
        sql = _NAMED.sub(lambda m: f"${names.index(m.group(1)) + 1}", query)
        rows = await self._pool.fetch(sql, *(params[n] for n in names))
        return [{k: json_friendly(v) for k, v in r.items()} for r in rows]

    async def fetch_by_key(self, query: str, keys: list[Hashable]) -> dict[Hashable, dict[str, Any] | None]:
        """The first row of `query` for each key bound to `:key`, in one round trip (None: no row)."""
        if self._sqlite is not None:
            async with self._lock:
                return await asyncio.to_thread(self._sqlite_by_key, query, keys)
        # One query for every key: the user's query joined laterally to the list of keys.
        array_type = "bigint[]" if all(type(k) is int for k in keys) else "text[]"
        args = keys if array_type == "bigint[]" else [str(k) for k in keys]
        inner = _NAMED.sub(lambda m: "k.rtstream_key" if m.group(1) == "key" else m.group(0), query)
        sql = (f"SELECT k.rtstream_key, q.* FROM unnest($1::{array_type}) AS k(rtstream_key) "
               f"CROSS JOIN LATERAL ({inner}) AS q")
        found: dict[Hashable, dict[str, Any] | None] = dict.fromkeys(keys)
        by_text = {str(k): k for k in keys}
        for r in await self._pool.fetch(sql, args):
            key = by_text.get(str(r["rtstream_key"]))
            if key is not None and found.get(key) is None:
                found[key] = {k: json_friendly(v) for k, v in r.items() if k != "rtstream_key"}
        return found

    def _sqlite_fetch(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        assert self._sqlite is not None
        try:
            return [{k: json_friendly(r[k]) for k in r.keys()} for r in self._sqlite.execute(query, params)]
        except sqlite3.Error as exc:
            raise SqlError(f"{self.component}: {exc}") from None

    def _sqlite_by_key(self, query: str, keys: list[Hashable]) -> dict[Hashable, dict[str, Any] | None]:
        assert self._sqlite is not None
        out: dict[Hashable, dict[str, Any] | None] = {}
        try:
            for key in keys:
                row = self._sqlite.execute(query, {"key": key}).fetchone()
                out[key] = None if row is None else {k: json_friendly(row[k]) for k in row.keys()}
        except sqlite3.Error as exc:
            raise SqlError(f"{self.component}: {exc}") from None
        return out

    async def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
