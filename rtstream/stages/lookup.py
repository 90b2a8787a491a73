"""`type = "lookup"`: enrich each record from a reference table (SQLite, PostgreSQL) or an HTTP API.

```toml
[stages.enrich]
type = "lookup"
key = "store"                        # the record field whose value is looked up
from = "sqlite"                      # sqlite | postgres | http
dsn = "sqlite:///ref/stores.db"
query = "SELECT region, manager FROM stores WHERE store = :key"
cache_size = 100000
cache_ttl = "10m"
on_missing = "keep"                  # keep | drop | dead_letter
```
It runs per record before the windows, like `map`, but lookups are made per batch: the distinct keys
of a batch that miss the cache are fetched together (one query, or at most `concurrency` HTTP
requests at a time), never one await per record. The returned columns are merged into the record
(named `prefix` + column). A failing fetch is retried by the stage's policy; the records whose keys
could still not be looked up are dead-lettered with the reason.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Literal
from urllib.parse import quote

import orjson
from pydantic import Field, SecretStr, model_validator

from rtstream.connect.http_client import HttpAuth
from rtstream.connect.sql_client import SqlClient, dsn_kind, parameters
from rtstream.model.durations import Duration
from rtstream.model.registry import register
from rtstream.stages.base import Stage, StageConfig

_MISSING = object()  # a cached "no such key"


class LookupConfig(StageConfig, HttpAuth):
    key: str
    source: Literal["sqlite", "postgres", "http"] = Field(alias="from")
    dsn: SecretStr | None = None  # a PostgreSQL DSN holds a password
    query: str | None = None
    url: str | None = Field(default=None, description='e.g. "https://api.example.com/stores/{key}"')
    cache_size: int = Field(default=100_000, ge=0)
    cache_ttl: Duration = 600.0
    on_missing: Literal["keep", "drop", "dead_letter"] = "keep"
    prefix: str = ""
    concurrency: int = Field(default=16, ge=1, description="HTTP lookups in flight at once")

    model_config = {"populate_by_name": True}

    @model_validator(mode="after")
    def _what_to_ask(self) -> LookupConfig:
        if self.source == "http":
            if not self.url or "{key}" not in self.url:
                raise ValueError('from = "http" needs url = "...{key}..."')
            return self
        if not self.dsn or not self.query:
            raise ValueError(f'from = "{self.source}" needs dsn and query')
        if dsn_kind(self.dsn.get_secret_value()) != self.source:
            raise ValueError(f'dsn does not match from = "{self.source}"')
        if parameters(self.query) != {"key"}:
            raise ValueError("query must use :key, and no other parameter")
        return self


class LookupCache:
    """Least recently used entries, each trusted for `ttl` seconds (a miss too)."""

    def __init__(self, size: int, ttl: float):
        self.size, self.ttl = size, ttl
        self._items: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: Hashable, now: float) -> Any:
        """The cached value, _MISSING for a cached miss, or None when it must be fetched."""
        item = self._items.get(key)
        if item is None or item[0] < now:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item[1]

    def put(self, key: Hashable, value: Any, now: float) -> None:
        if self.size == 0:
            return
        self._items[key] = (now + self.ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


class LookupFailed(Exception):
    pass


@register("stage", "lookup")
class LookupStage(Stage):
    """A per-record stage whose work is asynchronous: see rtstream.runtime.awaiting_stages."""

    Config = LookupConfig
    per_record = True
    awaits_per_batch = True

    def __init__(self, name: str, config: Any, context: Any):
        super().__init__(name, config, context)
        self.cache = LookupCache(config.cache_size, config.cache_ttl)
        self.lookup_seconds = 0.0
        self.lookups = 0
        self._sql: SqlClient | None = None

    def lookup_figures(self) -> tuple[int, int, int, float]:
        return self.cache.hits, self.cache.misses, self.lookups, self.lookup_seconds

    async def start(self) -> None:
        c = self.config
        if c.source == "http":
            self.http = c.session()
        else:
            self._sql = SqlClient(c.dsn.get_secret_value(), self.name)
            await self._sql.start()

    async def close(self) -> None:
        if self._sql is not None:
            await self._sql.close()
        if hasattr(self, "http"):
            await self.http.close()

    def cached(self, values: list[dict[str, Any]]) -> tuple[dict[Hashable, Any], set[Hashable]]:
        """What the cache answers for this batch's keys, and the distinct keys it cannot answer."""
        now = time.monotonic()
        field, cache = self.config.key, self.cache
        answers: dict[Hashable, Any] = {}
        wanted: set[Hashable] = set()
        for v in values:
            k = v.get(field)
            if k is None or k.__class__ is dict or k.__class__ is list or k in answers:
                continue
            found = cache.get(k, now)
            if found is None:
                wanted.add(k)
            else:
                answers[k] = found
        return answers, wanted

    async def fetch(self, keys: set[Hashable], answers: dict[Hashable, Any]) -> None:
        """Look the keys up into `answers` (a key with no row answers _MISSING) and the cache. Raises
        when any lookup failed, after keeping the answers that came: a retry asks only for the rest."""
        t0 = time.monotonic()
        found: dict[Hashable, dict[str, Any] | None] = {}
        try:
            if self._sql is not None:
                await self._sql.fetch_by_key(self.config.query, sorted(keys, key=str), found)
            else:
                await self._fetch_http(keys, found)
        finally:
            self.lookup_seconds += time.monotonic() - t0
            self.lookups += 1
            now = time.monotonic()
            for k, row in found.items():
                answers[k] = answer = _MISSING if row is None else row
                self.cache.put(k, answer, now)

    async def _fetch_http(self, keys: set[Hashable], found: dict[Hashable, dict[str, Any] | None]) -> None:
        limit = asyncio.Semaphore(self.config.concurrency)

        async def one(key: Hashable) -> None:
            url = self.config.url.replace("{key}", quote(str(key), safe=""))
            async with limit, self.http.get(url) as resp:
                if resp.status == 404:
                    found[key] = None
                    return
                if resp.status >= 400:
                    raise LookupFailed(f"HTTP {resp.status} for key {str(key)[:100]!r}")
                doc = orjson.loads(await resp.read())
                if not isinstance(doc, dict):
                    raise LookupFailed(f"expected a JSON object for key {str(key)[:100]!r}")
                found[key] = doc

        failed = [r for r in await asyncio.gather(*(one(k) for k in keys), return_exceptions=True) if r is not None]
        if failed:
            raise LookupFailed(f"{len(failed)} of {len(keys)} lookups failed, e.g. {type(failed[0]).__name__}: "
                               f"{failed[0]}")

    def enrich(self, value: dict[str, Any], answers: dict[Hashable, Any],
               failed: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """The record with its looked-up fields, and a reason when it must be dead-lettered instead."""
        c = self.config
        k = value.get(c.key)
        if k.__class__ is dict or k.__class__ is list:
            return [], f"lookup key {c.key} must be a scalar"
        found: Any = _MISSING if k is None else answers.get(k)
        if found is None:
            return [], f"lookup of {c.key} = {str(k)[:100]!r} failed: {failed}"
        if found is _MISSING:
            if c.on_missing == "keep":
                return [value], None
            if c.on_missing == "drop":
                return [], None
            return [], f"no {c.source} row for {c.key} = {str(k)[:100]!r}"
        if c.prefix:
            return [{**value, **{c.prefix + col: v for col, v in found.items()}}], None
        return [{**value, **found}], None

    def describe(self) -> str:
        c = self.config
        target = c.url if c.source == "http" else "(dsn)"
        return f"lookup: {c.key} in {c.source} {target} (cache {c.cache_size}, ttl {c.cache_ttl:g}s, missing: {c.on_missing})"
