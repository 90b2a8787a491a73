"""PostgreSQL via asyncpg: each window in one transaction, COPY into a temporary table, then upsert.

`INSERT ... ON CONFLICT (keys) DO UPDATE` makes a replayed window overwrite itself (rows without a
key: DELETE the window's, then INSERT; rtstream.sinks.row_keys), so results are effectively-once on
top of at-least-once processing. A window is written whole or not at all: a lost connection rolls it back.

Rows PostgreSQL would refuse forever because of what they hold are found before the write and
refused one by one (`RowsRejected`: to the dead letters, with the column and why), and the rest of
the window is written: a NUL character in a text value or anywhere in a jsonb value (PostgreSQL
text cannot hold it), a string that is not valid unicode, a value the column's type cannot hold
(`'many'` in a bigint column, an int beyond the column's range, a time that does not parse), a
value that cannot be encoded as JSON. What only the server knows (a CHECK or NOT NULL constraint, a
`varchar(n)` length, a key twice in one window) makes it refuse the window's COPY; the window is
then written again row by row, each in a savepoint, and the rows it refuses are rejected with its
message. The table's shape is rtstream.sinks.pg_table's: a missing table is created from the
first window's fields, a later field becomes a new column (`add_columns`) in the window's own
transaction; what the sink may not shape (`create_table = false`, `add_columns = false`) fails the
window (the sink halts and retries, commits stay behind it) until the table is fixed.
"""

from __future__ import annotations

import logging
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator

from rtstream.model.errors import RowsRejected, SinkError
from rtstream.model.registry import register
from rtstream.model.window import Window
from rtstream.sinks.base import Sink, SinkConfig
from rtstream.sinks.pg_table import PgTable
from rtstream.sinks.pg_values import CONVERTERS
from rtstream.sinks.row_keys import shown, unique_rows, upsert_keys, window_deletes

log = logging.getLogger("rtstream.sink.postgres")


class PostgresConfig(SinkConfig):
    dsn: SecretStr = Field(description='e.g. "${DATABASE_URL}"')
    table: str = Field(description="created when missing (create_table)")
    schema_name: str = Field(default="public", alias="schema", description="the table's schema (written `schema`)")
    key_columns: list[str] | None = Field(default=None,
        description="the upsert key, unique per row of a window; default: window_start plus the aggregate "
                    "key, or none (each window's rows replaced whole) when the rows have no key")
    columns: dict[str, str] | None = Field(default=None,
        description="column -> row field; default: every field, same name")
    create_table: bool = Field(default=True, description="create the table from the first rows when it does not exist")
    add_columns: bool | None = Field(default=None,
        description="a field the table has no column for gets one (nullable, typed by its first non-null value, "
                    "ADD COLUMN IF NOT EXISTS; a field whose name cannot be a column sends its rows to the dead "
                    "letters); default: as create_table; false: such a field fails the window until the table has "
                    "the column; not with `columns`, which names the table's columns")
    mode: Literal["upsert", "insert"] = Field(default="upsert",
        description="\"upsert\" replaces a window's rows on replay; \"insert\" appends")
    pool_size: int = Field(default=4, ge=1, description="connections kept open")
    chunk_rows: int = Field(default=10_000, ge=1, description="rows per statement")

    @model_validator(mode="after")
    def _columns_or_added(self) -> PostgresConfig:
        if self.add_columns and self.columns is not None:
            raise ValueError("add_columns = true cannot be honoured with `columns`: only the mapped fields are "
                             "written, so no column is ever added (leave add_columns out)")
        return self



def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@register("sink", "postgres")
class PostgresSink(Sink):
    Config = PostgresConfig

    async def start(self) -> None:
        try:
            import asyncpg
        except ImportError:
            raise SinkError(self.name, "the postgres sink needs asyncpg: pip install 'rtstream[postgres]'") from None
        # what a row's content makes the server refuse: data exceptions (class 22), integrity
        # constraints (23), one key twice in a window (21000); anything else is the server's trouble
        self.row_errors: tuple[type[Exception], ...] = (
            asyncpg.exceptions.DataError, asyncpg.exceptions.IntegrityConstraintViolationError,
            asyncpg.exceptions.CardinalityViolationError)
        self.pool = await asyncpg.create_pool(self.config.dsn.get_secret_value(), min_size=1,
                                              max_size=self.config.pool_size)
        self.keys = upsert_keys(self.config.key_columns, self.context.window_fields, self.context.key_fields)
        self.target = f"{_quote(self.config.schema_name)}.{_quote(self.config.table)}"
        self.table = PgTable(self.name, self.config, self.keys)
        self.table.column_types = await self.table.read_types(self.pool)

    async def write(self, window: Window, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        rejected: list[tuple[list[dict[str, Any]], str]] = []
        if self.config.mode == "upsert" and self.keys:
            rows, rejected = unique_rows(rows, self.keys)  # a key shared by two rows would keep one
        plan, mapping = await self.table.plan(self.pool, rows)
        rows, added = plan.rows, plan.added
        rejected += plan.rejected
        cols = list(mapping)
        kept: list[tuple[dict[str, Any], tuple[Any, ...]]] | None = None
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                types = await self.table.shape(conn, mapping, added) if rows else self.table.column_types
                kept = self._records(rows, mapping, types, rejected)
                if not kept:
                    raise RowsRejected(self.name, rejected)  # nothing to write: the transaction is empty
                await conn.execute(f"CREATE TEMPORARY TABLE rtstream_window (LIKE {self.target}) ON COMMIT DROP")
                step = self.config.chunk_rows
                for i in range(0, len(kept), step):
                    await conn.copy_records_to_table("rtstream_window", records=[v for _, v in kept[i:i + step]],
                                                     columns=cols)
                col_list = ", ".join(map(_quote, cols))
                await self._clear(conn, kept, cols)
                await conn.execute(f"INSERT INTO {self.target} ({col_list}) SELECT {col_list} FROM rtstream_window"
                                   + self._on_conflict(cols))
            self.table.column_types = types  # the shape it committed
        except self.row_errors as exc:
            if kept is None:  # before any row was looked at: the table's trouble, not a row's
                raise
            # something only the server knows refused a row (a constraint, a length, a range): find
            # which, one row at a time, and write the others
            log.warning("%s: window %s refused (%s: %s); writing it row by row to find the bad rows", self.name,
                        window.start_iso, type(exc).__name__, str(exc)[:300], extra={"component": self.name})
            await self._row_by_row(kept, mapping, added, rejected)
        if rejected:
            raise RowsRejected(self.name, rejected)  # the rest of the window is committed

    async def _row_by_row(self, kept: list[tuple[dict[str, Any], tuple[Any, ...]]], mapping: dict[str, str],
                          added: dict[str, Any], rejected: list[tuple[list[dict[str, Any]], str]]) -> None:
        cols = list(mapping)
        sql = (f"INSERT INTO {self.target} ({', '.join(map(_quote, cols))}) "
               f"VALUES ({', '.join(f'${i + 1}' for i in range(len(cols)))})" + self._on_conflict(cols))
        async with self.pool.acquire() as conn, conn.transaction():
            types = await self.table.shape(conn, mapping, added)  # the first attempt's was rolled back
            await self._clear(conn, kept, cols)
            for row, values in kept:
                try:
                    async with conn.transaction():  # a savepoint: a refused row undoes only itself
                        await conn.execute(sql, *values)
                except self.row_errors as exc:
                    rejected.append(([row], f"postgres refused the row: {type(exc).__name__}: {str(exc)[:300]}"))
        self.table.column_types = types

    async def _clear(self, conn: Any, kept: list[tuple[dict[str, Any], tuple[Any, ...]]], cols: list[str]) -> None:
        if self.config.mode == "upsert" and not self.keys:  # rows without a key replace the window's whole
            await conn.executemany(*window_deletes(self.name, self.target, self.config.table, self.context.window_fields,
                                                   cols, [v for _, v in kept], lambda i: f"${i + 1}"))

    def _on_conflict(self, cols: list[str]) -> str:
        if self.config.mode != "upsert" or not self.keys:
            return ""
        updates = [c for c in cols if c not in self.keys]
        return f" ON CONFLICT ({', '.join(map(_quote, self.keys))}) DO " + (
            "UPDATE SET " + ", ".join(f"{_quote(c)} = EXCLUDED.{_quote(c)}" for c in updates) if updates else "NOTHING")

    def _records(self, rows: list[dict[str, Any]], mapping: dict[str, str], types: dict[str, str],
                 rejected: list[tuple[list[dict[str, Any]], str]]) -> list[tuple[dict[str, Any], tuple[Any, ...]]]:
        """Rows as tuples of column values, checked against the table before anything is written;
        rows no column can take are added to `rejected` with why."""
        unknown = [c for c in mapping if c not in types]
        if unknown:
            raise SinkError(self.name, f"column {unknown[0]!r} is not in table {self.config.table!r} "
                                       f"(it has: {', '.join(types)}); add it or map it with `columns`")
        convs = [(col, field, CONVERTERS.get(types[col], lambda v: v)) for col, field in mapping.items()]
        out = []
        for row in rows:
            values = []
            why = None
            for col, field, conv in convs:
                v = row.get(field)
                if v is not None:
                    try:
                        v = conv(v)
                    except (TypeError, ValueError, OverflowError) as exc:
                        because = f": {exc}" if str(exc) else ""
                        why = (f"column {col!r} ({types[col]}) cannot hold {shown(v)} from field "
                               f"{field!r}{because}")
                        break
                values.append(v)
            if why is None:
                out.append((row, tuple(values)))
            else:
                rejected.append(([row], why))
        return out

    async def close(self) -> None:
        if hasattr(self, "pool"):
            await self.pool.close()

    def describe(self) -> str:
        u = urlsplit(self.config.dsn.get_secret_value())
        where = f"{u.hostname or 'local'}:{u.port or 5432}{u.path}" if u.scheme else "(dsn)"
        return f"postgres: {where} table {self.config.schema_name}.{self.config.table} ({self.config.mode})"

