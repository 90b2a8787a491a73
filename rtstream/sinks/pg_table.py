"""The shape of the postgres sink's table: the columns a window's rows need, and the DDL that makes
the table take them, run first in the window's own transaction.

A missing table is created from the first window (`create_table`): a column for every field of its
rows, typed by the field's first non-null value (rtstream.sinks.pg_values.pg_type). A later field
with no column is added, nullable and typed the same way, with `ADD COLUMN IF NOT EXISTS` (two
replicas may add it at once) when `add_columns` holds (by default, when rtstream may create the
table); rows carrying a field whose name cannot be a column are refused with why
(rtstream.sinks.table_columns). Without `add_columns`, such a field fails the window until the
table has the column. With a `columns` mapping the table is what it names: nothing is added.
What the table is known to hold changes only when a transaction that shaped it commits.
"""

from __future__ import annotations

from typing import Any

from rtstream.model.errors import SinkError
from rtstream.sinks.pg_values import column_name_problem, pg_type
from rtstream.sinks.row_keys import window_index
from rtstream.sinks.table_columns import IDENTIFIER, ColumnPlan, fields_of, plan_columns


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PgTable:
    """One sink's table: its column types as last read, and how a window's rows change it."""

    def __init__(self, sink: str, config: Any, keys: list[str]) -> None:
        self.sink = sink
        self.config = config
        self.keys = keys
        self.target = f"{_quote(config.schema_name)}.{_quote(config.table)}"
        add = config.add_columns
        self.adds_columns = config.columns is None and (config.create_table if add is None else add)
        self.column_types: dict[str, str] = {}  # column -> data_type; empty while the table does not exist

    async def read_types(self, conn: Any) -> dict[str, str]:
        rows = await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            self.config.schema_name, self.config.table)
        return {r["column_name"]: r["data_type"] for r in rows}

    async def plan(self, pool: Any, rows: list[dict[str, Any]]) -> tuple[ColumnPlan, dict[str, str]]:
        """The rows to write, the columns to add for them, and column -> field for the write."""
        if not self.column_types and not self.config.create_table:
            self.column_types = await self.read_types(pool)  # made since, by hand
            if not self.column_types:
                raise SinkError(self.sink, f"table {self.config.table!r} does not exist and create_table = false")
        if self.config.columns is not None:
            return self._mapped_plan(rows), dict(self.config.columns)
        fields = fields_of(rows)
        if not self.column_types:
            plan = plan_columns(rows, [], column_name_problem, defer_nulls=self.adds_columns)
            if plan.rows:
                self._check_keys(list(plan.added))
            return plan, {f: f for f in plan.added}
        if all(f in self.column_types for f in fields):
            return ColumnPlan(rows), {f: f for f in fields}
        if not self.adds_columns:
            self.column_types = await self.read_types(pool)  # a column added by hand since
            unknown = [f for f in fields if f not in self.column_types]
            if unknown:
                raise SinkError(self.sink, f"column {unknown[0]!r} is not in table {self.config.table!r} (it has: "
                                           f"{', '.join(self.column_types)}); add it, map it with `columns`, or set "
                                           f"add_columns = true")
            return ColumnPlan(rows), {f: f for f in fields}
        plan = plan_columns(rows, self.column_types, column_name_problem)
        have = self.column_types
        return plan, {f: f for f in (fields_of(plan.rows) if plan.rejected else fields) if f in have or f in plan.added}

    def _mapped_plan(self, rows: list[dict[str, Any]]) -> ColumnPlan:
        """With `columns`: the table it names, created from the mapped fields' first values."""
        plan = ColumnPlan(rows)
        if not self.column_types:
            mapping = dict(self.config.columns)
            for col in mapping:
                if not IDENTIFIER.match(col):
                    raise SinkError(self.sink, f"{col!r} is not a usable column name; map it with `columns`")
            self._check_keys(list(mapping))
            plan.added = {col: next((r[field] for r in rows if r.get(field) is not None), None)
                          for col, field in mapping.items()}
        return plan

    def _check_keys(self, columns: list[str]) -> None:
        for key in self.keys:
            if not IDENTIFIER.match(key):
                raise SinkError(self.sink, f"key column {key!r} is not a usable column name")
        missing = [k for k in self.keys if k not in columns]
        if missing:
            raise SinkError(self.sink, f"key column {missing[0]!r} is not among the columns {columns}")

    async def shape(self, conn: Any, mapping: dict[str, str], added: dict[str, Any]) -> dict[str, str]:
        """Make the table take `added` inside `conn`'s transaction; the column types it then has."""
        if not added and self.column_types:
            return self.column_types
        if not self.column_types:
            defs = [f"{_quote(col)} {pg_type(col, added.get(col))}" for col in mapping]
            if self.config.mode == "upsert" and self.keys:
                defs.append(f"PRIMARY KEY ({', '.join(map(_quote, self.keys))})")
            await conn.execute(f"CREATE TABLE IF NOT EXISTS {self.target} ({', '.join(defs)})")
            if self.config.mode == "upsert" and not self.keys and "window_start" in mapping:  # replaced per window
                await conn.execute(window_index(self.target, self.config.table))
        if self.adds_columns:  # also after a CREATE: another replica may have made the table first
            for col, value in added.items():
                await conn.execute(f"ALTER TABLE {self.target} ADD COLUMN IF NOT EXISTS {_quote(col)} "
                                   f"{pg_type(col, value)}")
        return await self.read_types(conn)
