"""SQLite: each window in one transaction, WAL mode: upserted by (window_start, key) when the rows
have a key, else the window's rows replaced whole (rtstream.sinks.row_keys says which and why).

A row SQLite can never take (an int beyond 64 bits, a string that is not valid unicode, a value
that cannot be encoded as JSON, a constraint of a table you made) is refused on its own
(`RowsRejected`, to the dead letters with SQLite's reason) and the rest of the window is written
in the same transaction. The table is created with a column for every field of the first
window's rows; a later field with no column is added as a column in the window's transaction
(`add_columns`, rtstream.sinks.table_columns), or, with `add_columns = false`, fails the window
until the table has it. A locked or full database fails the window and the policy retries.
"""

from __future__ import annotations

import asyncio
import sqlite3
import string
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import Field

from rtstream.model.errors import RowsRejected, SinkError
from rtstream.model.registry import register
from rtstream.model.window import Window
from rtstream.sinks.base import Sink, SinkConfig
from rtstream.sinks.row_keys import unique_rows, upsert_keys, window_deletes, window_index
from rtstream.sinks.table_columns import IDENTIFIER, ColumnPlan, fields_of, not_an_identifier, plan_columns

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


class SQLiteConfig(SinkConfig):
    path: str = Field(description="the database file (relative to the config file)")
    table: str = Field(default="results", description="created when missing")
    key_columns: list[str] | None = Field(default=None,
        description="the upsert key, unique per row of a window; default: window_start plus the aggregate "
                    "key, or none (each window's rows replaced whole) when the rows have no key")
    mode: Literal["upsert", "insert"] = Field(default="upsert",
        description="\"upsert\" replaces a window's rows on replay; \"insert\" appends")
    create_table: bool = Field(default=True, description="create the table when it does not exist")
    add_columns: bool | None = Field(default=None,
        description="a field the table has no column for gets one (nullable, typed by its first non-null value; a "
                    "field whose name cannot be a column sends its rows to the dead letters); default: as "
                    "create_table; false: such a field fails the window until the table has the column")


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


def _ascii_fold(name: str) -> str:
    """A column name as SQLite compares it: ASCII letters without case."""
    return name.translate(_ASCII_LOWER)


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

    @property
    def adds_columns(self) -> bool:
        return self.config.create_table if self.config.add_columns is None else self.config.add_columns

    def _write(self, window: Window, rows: list[dict[str, Any]]) -> list[tuple[list[dict[str, Any]], str]]:
        with self._lock:
            if not rows:
                return []
            upsert = self.config.mode == "upsert"
            rejected: list[tuple[list[dict[str, Any]], str]] = []
            if upsert and self.keys:
                rows, rejected = unique_rows(rows, self.keys)  # a key shared by two rows would keep one
            plan = self._plan(rows)
            rows = plan.rows
            rejected += plan.rejected
            if not rows:
                return rejected
            creating = self._columns is None
            cols = [*(self._columns or []), *plan.added]
            sql = f"INSERT INTO {_quote(self.config.table)} ({', '.join(map(_quote, cols))}) " \
                  f"VALUES ({', '.join('?' for _ in cols)})"
            if upsert and self.keys:
                updates = [c for c in cols if c not in self.keys]
                sql += f" ON CONFLICT ({', '.join(map(_quote, self.keys))}) DO " + (
                    "UPDATE SET " + ", ".join(f"{_quote(c)}=excluded.{_quote(c)}" for c in updates)
                    if updates else "NOTHING")
            shape = self._shape(plan.added, creating)
            clear = self._clear(rows, cols) if upsert and not self.keys else lambda cur: None
            try:
                params = [tuple(to_sql_value(r.get(c)) for c in cols) for r in rows]

                def all_at_once(cur: sqlite3.Cursor) -> None:
                    shape(cur)
                    clear(cur)
                    cur.executemany(sql, params)

                self._transaction(all_at_once)
                self._reshaped(plan.added, creating)
                return rejected
            except ROW_ERRORS:
                pass  # some row cannot be stored: find which, one by one, and store the others

            def one_by_one(cur: sqlite3.Cursor) -> None:
                shape(cur)
                clear(cur)
                for r in rows:
                    try:
                        cur.execute(sql, tuple(to_sql_value(r.get(c)) for c in cols))
                    except ROW_ERRORS as exc:  # a failed statement leaves the transaction open in SQLite
                        rejected.append(([r], f"sqlite refused the row: {type(exc).__name__}: {str(exc)[:200]}"))

            self._transaction(one_by_one)
            self._reshaped(plan.added, creating)
            return rejected

    def _plan(self, rows: list[dict[str, Any]]) -> ColumnPlan:
        """The rows to write and the columns to add for them (rtstream.sinks.table_columns)."""
        if self._columns is None:
            self._columns = self._existing_columns()  # made since, by hand or by another writer
        if self._columns is None:
            return self._first_plan(rows)
        known = set(self._columns)
        if all(f in known for f in fields_of(rows)):
            return ColumnPlan(rows)
        if self.adds_columns:
            return plan_columns(rows, self._columns, not_an_identifier, _ascii_fold)
        self._columns = self._existing_columns() or self._columns  # a column added by hand since
        unknown = [f for f in fields_of(rows) if f not in self._columns]
        if unknown:
            raise SinkError(self.name, f"column {unknown[0]!r} is not in table {self.config.table!r} "
                                       f"(columns: {', '.join(self._columns)}); add it, or set add_columns = true")
        return ColumnPlan(rows)

    def _first_plan(self, rows: list[dict[str, Any]]) -> ColumnPlan:
        """The table to create: a column for every field of the window's rows."""
        if not self.config.create_table:
            raise SinkError(self.name, f"table {self.config.table!r} does not exist and create_table = false")
        for name in self.keys:
            if not IDENTIFIER.match(name):
                raise SinkError(self.name, f"key column {name!r} is not a usable column name")
        plan = plan_columns(rows, [], not_an_identifier, _ascii_fold, defer_nulls=self.adds_columns)
        missing = [k for k in self.keys if k not in plan.added]
        if plan.rows and missing:
            raise SinkError(self.name, f"key column {missing[0]!r} is not in the rows")
        return plan

    def _shape(self, added: dict[str, Any], creating: bool) -> Callable[[sqlite3.Cursor], None]:
        """What makes the table take `added`, run first in the window's transaction: rolled back
        with it, and the columns re-read under its lock so a column another writer added is kept."""
        table = _quote(self.config.table)
        adds = self.adds_columns

        def shape(cur: sqlite3.Cursor) -> None:
            if creating:
                cols = [f"{_quote(c)} {sql_type(v)}" for c, v in added.items()]
                pk = f", PRIMARY KEY ({', '.join(map(_quote, self.keys))})" \
                    if self.config.mode == "upsert" and self.keys else ""
                cur.execute(f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(cols)}{pk})")
                if self.config.mode == "upsert" and not self.keys:  # rows are replaced per window: find them fast
                    cur.execute(window_index(table, self.config.table))
            if adds:
                have = {_ascii_fold(r[1]) for r in cur.execute(f"PRAGMA table_info({table})").fetchall()}
                for c, v in added.items():
                    if _ascii_fold(c) not in have:
                        cur.execute(f"ALTER TABLE {table} ADD COLUMN {_quote(c)} {sql_type(v)}")

        return shape if added or creating else lambda cur: None

    def _reshaped(self, added: dict[str, Any], creating: bool) -> None:
        if added or creating:
            self._columns = self._existing_columns()

    def _clear(self, rows: list[dict[str, Any]], cols: list[str]) -> Any:
        """What deletes the window's rows (by its fields) before they are inserted again: rows
        without a key are replaced whole, so a replay leaves exactly the rebuilt window's rows."""
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

    async def close(self) -> None:
        if hasattr(self, "_db"):
            self._db.close()
