"""SQLite: each window in one transaction, WAL mode: upserted by (window_start, key) when the rows
have a key, else the window's rows replaced whole (rtstream.sinks.row_keys says which and why).

A row SQLite can never take (an int beyond 64 bits, a string that is not valid unicode, a value
that cannot be encoded as JSON, a constraint of a table you made) is refused on its own
(`RowsRejected`, to the dead letters with SQLite's reason) and the rest of the window is written
in the same transaction. A field with no column fails the window until the table is fixed; a
locked or full database fails it and the policy retries.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import Field

from rtstream.model.errors import RowsRejected, SinkError
from rtstream.model.registry import register
from rtstream.model.window import Window
from rtstream.sinks.base import Sink, SinkConfig
from rtstream.sinks.row_keys import unique_rows, upsert_keys, window_deletes, window_index

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SQLiteConfig(SinkConfig):
    path: str = Field(description="the database file (relative to the config file)")
    table: str = Field(default="results", description="created when missing")
    key_columns: list[str] | None = Field(default=None,
        description="the upsert key, unique per row of a window; default: window_start plus the aggregate "
                    "key, or none (each window's rows replaced whole) when the rows have no key")
    mode: Literal["upsert", "insert"] = Field(default="upsert",
        description="\"upsert\" replaces a window's rows on replay; \"insert\" appends")
    create_table: bool = Field(default=True, description="create the table when it does not exist")


def sql_type(value: Any) -> str:
    if isinstance(value, bool) or isinstance(value, int):
        return "INTEGER"
    if isinstance(value, float):
        return "REAL"
    return "TEXT"


def to_sql_value(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, str)):
        return value
    return orjson.dumps(value, default=str).decode()


# what a row's content raises (at bind or from a constraint); anything else is the database's trouble
ROW_ERRORS = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError, OverflowError,
              UnicodeEncodeError, TypeError, ValueError)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@register("sink", "sqlite")
class SQLiteSink(Sink):
    Config = SQLiteConfig

    async def start(self) -> None:
        Path(self.config.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.config.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._columns: list[str] | None = self._existing_columns()
        self.keys = upsert_keys(self.config.key_columns, self.context.window_fields, self.context.key_fields)

    def _existing_columns(self) -> list[str] | None:
        rows = self._db.execute(f"PRAGMA table_info({_quote(self.config.table)})").fetchall()
        return [r[1] for r in rows] or None

    async def write(self, window: Window, rows: list[dict[str, Any]]) -> None:
        rejected = await asyncio.to_thread(self._write, window, rows)
        if rejected:
            raise RowsRejected(self.name, rejected)

    def _write(self, window: Window, rows: list[dict[str, Any]]) -> list[tuple[list[dict[str, Any]], str]]:
        with self._lock:
            if not rows:
                return []
            if self._columns is None:
                self._create(rows[0])
            assert self._columns is not None
            unknown = [c for r in rows for c in r if c not in self._columns]
            if unknown:
                raise SinkError(self.name, f"column {unknown[0]!r} is not in table {self.config.table!r} "
                                           f"(columns: {', '.join(self._columns)})")
            cols = self._columns
            upsert = self.config.mode == "upsert"
            rejected: list[tuple[list[dict[str, Any]], str]] = []
            if upsert and self.keys:
                rows, rejected = unique_rows(rows, self.keys)  # a key shared by two rows would keep one
            sql = f"INSERT INTO {_quote(self.config.table)} ({', '.join(map(_quote, cols))}) " \
                  f"VALUES ({', '.join('?' for _ in cols)})"
            if upsert and self.keys:
                updates = [c for c in cols if c not in self.keys]
                sql += f" ON CONFLICT ({', '.join(map(_quote, self.keys))}) DO " + (
                    "UPDATE SET " + ", ".join(f"{_quote(c)}=excluded.{_quote(c)}" for c in updates)
                    if updates else "NOTHING")
            clear = self._clear(rows) if upsert and not self.keys else lambda cur: None
            try:
                params = [tuple(to_sql_value(r.get(c)) for c in cols) for r in rows]

                def all_at_once(cur: sqlite3.Cursor) -> None:
                    clear(cur)
                    cur.executemany(sql, params)

                self._transaction(all_at_once)
                return rejected
            except ROW_ERRORS:
                pass  # some row cannot be stored: find which, one by one, and store the others

            def one_by_one(cur: sqlite3.Cursor) -> None:
                clear(cur)
                for r in rows:
                    try:
                        cur.execute(sql, tuple(to_sql_value(r.get(c)) for c in cols))
                    except ROW_ERRORS as exc:  # a failed statement leaves the transaction open in SQLite
                        rejected.append(([r], f"sqlite refused the row: {type(exc).__name__}: {str(exc)[:200]}"))

            self._transaction(one_by_one)
            return rejected

    def _clear(self, rows: list[dict[str, Any]]) -> Any:
        """What deletes the window's rows (by its fields) before they are inserted again: rows
        without a key are replaced whole, so a replay leaves exactly the rebuilt window's rows."""
        cols = self._columns or []
        sql, windows = window_deletes(self.name, _quote(self.config.table), self.config.table,
                                      self.context.window_fields, cols,
                                      [tuple(to_sql_value(r.get(c)) for c in cols) for r in rows], lambda i: "?")
        return lambda cur: cur.executemany(sql, windows)

    def _transaction(self, body: Any) -> None:
        cur = self._db.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            body(cur)
            cur.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                cur.execute("ROLLBACK")
            raise

    def _create(self, first: dict[str, Any]) -> None:
        if not self.config.create_table:
            raise SinkError(self.name, f"table {self.config.table!r} does not exist and create_table = false")
        for name in [*first, *self.keys]:
            if not _IDENT.match(name):
                raise SinkError(self.name, f"field {name!r} is not a usable column name")
        missing = [k for k in self.keys if k not in first]
        if missing:
            raise SinkError(self.name, f"key column {missing[0]!r} is not in the rows")
        cols = [f"{_quote(c)} {sql_type(v)}" for c, v in first.items()]
        pk = f", PRIMARY KEY ({', '.join(map(_quote, self.keys))})" if self.config.mode == "upsert" and self.keys \
            else ""
        self._db.execute(f"CREATE TABLE IF NOT EXISTS {_quote(self.config.table)} ({', '.join(cols)}{pk})")
        if self.config.mode == "upsert" and not self.keys:  # rows are replaced per window: find them fast
            self._db.execute(window_index(_quote(self.config.table), self.config.table))
        self._columns = list(first)

    async def close(self) -> None:
        if hasattr(self, "_db"):
            self._db.close()
