"""`type = "sql"`: poll a table with `SELECT ... WHERE id > :cursor`, the fetch_data of many DAGs.

```toml
[sources.orders_db]
type = "sql"
dsn = "sqlite:///data/orders.db"     # or postgresql://... (asyncpg)
query = "SELECT id, store, ts, total FROM orders WHERE id > :cursor ORDER BY id LIMIT 5000"
cursor_field = "id"
cursor_start = 0
interval = "5s"                      # clock-aligned polls; a full page polls again at once
stop_at_end = false                  # true: a finite run ends after a poll returns nothing
tiebreak_field = "id"                # optional: a unique column; the query then filters on
                                     # (ts, id) > (:cursor, :tiebreak) ORDER BY ts, id
settle = "0s"                        # hold back rows an open transaction may still precede (sql_cursor)
```
Cursor values are compared as their real type (sql_cursor), each poll runs in a read-only
transaction, and a value JSON cannot hold (numeric Infinity, a BC date) travels as its exact text.
Rows become records (columns as fields, timestamps as ISO-8601 text, decimals as numbers). Each
poll's rows are appended to the durable spool together with the cursor they advance it to, in one
write: a SIGKILL loses nothing, and a restart asks only for rows past the spooled cursor.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from pydantic import Field, SecretStr, model_validator

from rtstream.connect.sql_client import SqlClient, SqlError, dsn_kind, json_friendly, parameters
from rtstream.model.batch import Batch
from rtstream.model.durations import Duration
from rtstream.model.errors import SourceError
from rtstream.model.registry import register
from rtstream.sources.spool.spooled_source import SpooledConfig, SpooledSource
from rtstream.sources.sql_cursor import Cursor, CursorError, bind, from_marker

log = logging.getLogger("rtstream.source.sql")
_LIMIT = re.compile(r"\blimit\s+(\d+)\s*;?\s*$", re.IGNORECASE)
_FIRST_WORD = re.compile(r"\s*\(*\s*(\w+)")
_READS = {"select", "with", "values", "table"}  # what a query that only reads starts with
MAX_PAGES_PER_POLL = 1000  # a poll follows full pages at once, up to this many


class SqlSourceConfig(SpooledConfig):
    dsn: SecretStr = Field(description="the database URL, e.g. \"${DATABASE_URL}\"")
    query: str = Field(description="a SELECT whose rows are the records")
    cursor_field: str = Field(description="an ascending column: rows after its last value are read next")
    cursor_start: int | float | str = Field(default=0, description="the cursor's value before the first row")
    tiebreak_field: str | None = Field(default=None, description="a unique column ordering rows that share a cursor value")
    settle: Duration = Field(default=0.0, description="hold back rows an open transaction may still precede")
    interval: Duration = Field(default=300.0, description="time between polls")
    stop_at_end: bool = Field(default=False, description="a finite run: end once a poll returns nothing")

    @model_validator(mode="after")
    def _cursor_query(self) -> SqlSourceConfig:
        dsn_kind(self.dsn.get_secret_value())
        m = _FIRST_WORD.match(self.query)
        if m is None or m.group(1).lower() not in _READS:
            raise ValueError("query must be a SELECT: the sql source only reads (each poll runs read-only)")
        if self.tiebreak_field is None and parameters(self.query) != {"cursor"}:
            raise ValueError("query must use :cursor (the last cursor_field value seen), and no other parameter")
        if self.tiebreak_field is not None and parameters(self.query) != {"cursor", "tiebreak"}:
            raise ValueError("with tiebreak_field, query must use :cursor and :tiebreak, e.g. WHERE (ts, id) > "
                             "(:cursor, :tiebreak) ORDER BY ts, id, and no other parameter")
        return self


@register("source", "sql")
class SqlSource(SpooledSource):
    Config = SqlSourceConfig

    @property
    def finite(self) -> bool:
        return bool(self.config.stop_at_end)

    async def start(self) -> None:
        c = self.config
        self.open_spool()
        state = orjson.loads(self.spool.last_marker() or b"{}")
        self.cursor = Cursor(c.cursor_field, c.tiebreak_field, from_marker(state.get("cursor", c.cursor_start)),
                             from_marker(state.get("tiebreak")), settle=c.settle,
                             start_key=f"sources.{self.name}.cursor_start", started="cursor" in state)
        self.page = int(m.group(1)) if (m := _LIMIT.search(c.query)) else None
        self.client = SqlClient(c.dsn.get_secret_value(), self.name)
        await self.client.start()
        try:
            self.types = await self.client.parameter_types(c.query)
            self._params()  # a cursor_start PostgreSQL cannot compare is refused now, naming the key
        except (SqlError, CursorError) as exc:
            raise SourceError(self.name, str(exc).removeprefix(f"{self.name}: ")) from None
        self.polls = 0
        self.held = False
        if not c.stop_at_end:
            self.start_ticker(c.interval)

    def _params(self) -> dict[str, Any]:
        """The cursor as the query's parameters, in the types PostgreSQL compares them with."""
        cur, key = self.cursor, "cursor_start" if not self.cursor.started else "cursor"
        try:
            params = {"cursor": bind(cur.value, self.types.get("cursor"))}
            if self.config.tiebreak_field:
                key = "tiebreak"
                params["tiebreak"] = bind(cur.tiebreak, self.types.get("tiebreak"))
        except CursorError as exc:
            raise CursorError(f"sources.{self.name}.{key}: {exc}") from None
        return params

    async def fetch_once(self) -> int:
        """Poll until a page comes back short (or empty); returns the rows spooled."""
        total = 0
        for _ in range(MAX_PAGES_PER_POLL):
            got, full = await self._one_page()
            total += got
            if not full or self.held:
                break
        return total

    async def _one_page(self) -> tuple[int, bool]:
        """Rows spooled, and whether the page was full (more may follow at once)."""
        try:
            return await self._page()
        except (SqlError, CursorError) as exc:  # one line that says what to change; no traceback
            raise SourceError(self.name, str(exc).removeprefix(f"{self.name}: ")) from None

    async def _page(self) -> tuple[int, bool]:
        arrival = int(time.time() * 1000)
        rows = await self.client.fetch(self.config.query, self._params(), raw=True)
        self.polls += 1
        full = self.page is not None and len(rows) >= self.page
        taken, self.held = self.cursor.take(rows, full)
        if not taken:
            return 0, full
        await self.spool.append([_encode(r) for r in taken], arrival_ms=arrival,
                                marker=orjson.dumps(self.cursor.marker()))
        return len(taken), full

    async def batches(self) -> AsyncIterator[Batch]:
        if not self.config.stop_at_end:
            async for batch in super().batches():
                yield batch
            return
        # A finite run: poll a page, hand over what the spool holds, until a poll brings nothing.
        while True:
            got, full = await self._one_page()
            async for batch in self.spool.read(self.name, self.config.batch_size, follow=False):
                self.spool.read_from = batch.end
                yield batch
            if self.held:  # rows that settle holds back exist: the run waits for them
                await asyncio.sleep(min(1.0, self.config.settle / 4))
            elif got == 0:
                return

    async def close(self) -> None:
        if hasattr(self, "client"):
            await self.client.close()
        await super().close()

    def describe(self) -> str:
        c = self.config
        when = "until empty" if c.stop_at_end else f"every {c.interval:g}s"
        return f"sql: {dsn_kind(c.dsn.get_secret_value())}, cursor {c.cursor_field} from {c.cursor_start!r}, {when}"


def _encode(raw: dict[str, Any]) -> bytes:
    """A row as the spool's JSON; a value JSON cannot hold goes as its text, never failing the page."""
    row = {k: json_friendly(v) for k, v in raw.items()}
    try:
        return orjson.dumps(row, default=str)
    except orjson.JSONEncodeError:
        return orjson.dumps({k: v if _encodes(v) else str(v) for k, v in row.items()}, default=str)


def _encodes(v: Any) -> bool:
    try:
        orjson.dumps(v, default=str)
    except orjson.JSONEncodeError:
        return False
    return True
