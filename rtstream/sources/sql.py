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
```
Rows become records (columns as fields, timestamps as ISO-8601 text, decimals as numbers). Each
poll's rows are appended to the durable spool together with the cursor they advance it to, in one
write: a SIGKILL loses nothing, and a restart asks only for rows past the spooled cursor.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from pydantic import Field, SecretStr, model_validator

from rtstream.connect.sql_client import SqlClient, dsn_kind, parameters
from rtstream.model.batch import Batch
from rtstream.model.durations import Duration
from rtstream.model.registry import register
from rtstream.sources.spool.spooled_source import SpooledConfig, SpooledSource

log = logging.getLogger("rtstream.source.sql")
_LIMIT = re.compile(r"\blimit\s+(\d+)\s*;?\s*$", re.IGNORECASE)
MAX_PAGES_PER_POLL = 1000  # a poll follows full pages at once, up to this many


class SqlSourceConfig(SpooledConfig):
    dsn: SecretStr
    query: str
    cursor_field: str
    cursor_start: int | float | str = 0
    interval: Duration = 300.0
    stop_at_end: bool = Field(default=False, description="a finite run: end once a poll returns nothing")

    @model_validator(mode="after")
    def _cursor_query(self) -> SqlSourceConfig:
        dsn_kind(self.dsn.get_secret_value())
        if parameters(self.query) != {"cursor"}:
            raise ValueError("query must use :cursor (the last cursor_field value seen), and no other parameter")
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
        self.cursor: Any = state.get("cursor", c.cursor_start)
        self.page = int(m.group(1)) if (m := _LIMIT.search(c.query)) else None
        self.client = SqlClient(c.dsn.get_secret_value(), self.name)
        await self.client.start()
        self.polls = 0
        if not c.stop_at_end:
            self.start_ticker(c.interval)

    async def fetch_once(self) -> int:
        """Poll until a page comes back short (or empty); returns the rows spooled."""
        total = 0
        for _ in range(MAX_PAGES_PER_POLL):
            got = await self._one_page()
            total += got
            if self.page is None or got < self.page:
                break
        return total

    async def _one_page(self) -> int:
        c = self.config
        arrival = int(time.time() * 1000)
        rows = await self.client.fetch(c.query, {"cursor": self.cursor})
        self.polls += 1
        if not rows:
            return 0
        cursor = self.cursor
        for row in rows:
            v = row.get(c.cursor_field)
            if v is not None and (cursor is None or v > cursor):
                cursor = v
        if cursor == self.cursor:
            raise ValueError(f"the query returned rows but none advances {c.cursor_field} past {self.cursor!r}: "
                             "does it filter on > :cursor and select the cursor column?")
        await self.spool.append([orjson.dumps(r, default=str) for r in rows], arrival_ms=arrival,
                                marker=orjson.dumps({"cursor": cursor}))
        self.cursor = cursor
        return len(rows)

    async def batches(self) -> AsyncIterator[Batch]:
        if not self.config.stop_at_end:
            async for batch in super().batches():
                yield batch
            return
        # A finite run: poll a page, hand over what the spool holds, until a poll brings nothing.
        while True:
            got = await self._one_page()
            async for batch in self.spool.read(self.name, self.config.batch_size, follow=False):
                self.spool.read_from = batch.end
                yield batch
            if got == 0:
                return

    async def close(self) -> None:
        if hasattr(self, "client"):
            await self.client.close()
        await super().close()

    def describe(self) -> str:
        c = self.config
        when = "until empty" if c.stop_at_end else f"every {c.interval:g}s"
        return f"sql: {dsn_kind(c.dsn.get_secret_value())}, cursor {c.cursor_field} from {c.cursor_start!r}, {when}"
