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
(named `prefix` + column).

Failures. A key is its value and its type: `true`, `1`, `1.0` and `"1"` are four keys, cached apart
and sent as what they are (a PostgreSQL boolean, bigint, float8, text; `true`, `1`, `1.0` in a URL).
A failure of one key (an HTTP 4xx other than 404, 401, 407, 408 and 429; an answer that is not a JSON
object; a query error its value causes, such as text against an integer column) dead-letters that
key's records, each with its own key and reason, and is cached like an answer. A failure of the
store (connection refused, a timeout, an HTTP 5xx, 401, 407, 408 or 429, any other query error) is
retried by the stage's policy and then halts, like a sink: the batch waits, nothing is
dead-lettered, commits stay behind it and /readyz names the stage, until the store answers again.
`on_failure = "dead_letter"` on the stage dead-letters the records of a store failure instead.
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
from rtstream.connect.sql_client import KeyRejected, SqlClient, TypedKey, dsn_kind, parameters
from rtstream.model.durations import Duration
from rtstream.model.registry import register
from rtstream.stages.base import Stage, StageConfig

_MISSING = object()  # a cached "no such key"
_STORE_STATUSES = frozenset({401, 407, 408, 429})  # 4xx that speak of the store or the client, not the key


class LookupConfig(StageConfig, HttpAuth):
    key: str = Field(description="the record field looked up")
    source: Literal["sqlite", "postgres", "http"] = Field(alias="from", description="where keys are looked up: a sqlite or PostgreSQL table, or an HTTP API")
    dsn: SecretStr | None = Field(default=None, description="sqlite path or PostgreSQL URL of the table looked up in")
    query: str | None = Field(default=None, description="a SELECT with one parameter, the key")
    url: str | None = Field(default=None, description='e.g. "https://api.example.com/stores/{key}"')
    cache_size: int = Field(default=100_000, ge=0, description="entries kept in memory")
    cache_ttl: Duration = Field(default=600.0, description="how long an entry is kept")
    on_missing: Literal["keep", "drop", "dead_letter"] = Field(default="keep",
        description="what happens to a record whose key is not found")
    prefix: str = Field(default="", description="prepended to the names of the fields added")
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
    """The store failed some lookups; `by_key` says why for each key (never another key's reason)."""

    def __init__(self, message: str, by_key: dict[TypedKey, str] | None = None):
        super().__init__(message)
        self.by_key = by_key or {}


def shown(key: Any) -> str:
    """A key as a dead letter names it: text quoted, others as JSON spells them (true, 1, 1.0)."""
    return repr(key[:100]) if key.__class__ is str else url_text(key)[:100]


def url_text(key: Any) -> str:
    """A key as it goes into a URL: its JSON spelling, text unquoted (`true`, `1`, `1.0`, `abc`)."""
    if key.__class__ is str:
        return key  # type: ignore[no-any-return]
    if key.__class__ is bool:
        return "true" if key else "false"
    if key.__class__ is float:
        return orjson.dumps(key).decode()
    return str(key)


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

    def cached(self, values: list[dict[str, Any]]) -> tuple[dict[TypedKey, Any], set[TypedKey]]:
        """What the cache answers for this batch's keys, and the distinct keys it cannot answer."""
        now = time.monotonic()
        field, cache = self.config.key, self.cache
        answers: dict[TypedKey, Any] = {}
        wanted: set[TypedKey] = set()
        for v in values:
            k = v.get(field)
            if k is None or k.__class__ is dict or k.__class__ is list:
                continue
            tk = (k.__class__, k)  # its type too: true == 1 == 1.0 in Python, three keys here
            if tk in answers:
                continue
            found = cache.get(tk, now)
            if found is None:
                wanted.add(tk)
            else:
                answers[tk] = found
        return answers, wanted

    async def fetch(self, keys: set[TypedKey], answers: dict[TypedKey, Any]) -> None:
        """Look the keys up into `answers` (a key with no row answers _MISSING, a key that failed on its
        own a KeyRejected) and the cache. Raises when the store failed, after keeping the answers
        that came: a retry asks only for the rest."""
        t0 = time.monotonic()
        found: dict[TypedKey, dict[str, Any] | KeyRejected | None] = {}
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

    async def _fetch_http(self, keys: set[TypedKey], found: dict[TypedKey, dict[str, Any] | KeyRejected | None]) -> None:
        limit = asyncio.Semaphore(self.config.concurrency)
        failed: dict[TypedKey, str] = {}

        async def one(tk: TypedKey) -> None:
            url = self.config.url.replace("{key}", quote(url_text(tk[1]), safe=""))
            try:
                async with limit, self.http.get(url) as resp:
                    if resp.status == 404:
                        found[tk] = None
                        return
                    if resp.status >= 500 or resp.status in _STORE_STATUSES:
                        failed[tk] = f"HTTP {resp.status}"  # the store's failure: retried, then halts
                        return
                    if resp.status >= 400:
                        found[tk] = KeyRejected(f"HTTP {resp.status}")
                        return
                    body = await resp.read()
            except Exception as exc:  # noqa: BLE001 - connection refused, reset, timeout: the store's
                failed[tk] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
                return
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError:
                doc = None
            found[tk] = doc if isinstance(doc, dict) else KeyRejected("the answer is not a JSON object")

        await asyncio.gather(*(one(k) for k in keys))
        if failed:
            first = next(iter(failed.values()))
            raise LookupFailed(f"{len(failed)} of {len(keys)} lookups failed, e.g. {first}", failed)

    def enrich(self, value: dict[str, Any], answers: dict[TypedKey, Any],
               failed: BaseException | None) -> tuple[list[dict[str, Any]], str | None]:
        """The record with its looked-up fields, and a reason when it must be dead-lettered instead."""
        c = self.config
        k = value.get(c.key)
        if k.__class__ is dict or k.__class__ is list:
            return [], f"lookup key {c.key} must be a scalar"
        found: Any = _MISSING if k is None else answers.get((k.__class__, k))
        if found is None:  # the store failed and the policy says dead-letter: this key's own reason
            by_key = getattr(failed, "by_key", {})
            why = by_key.get((k.__class__, k)) or f"{type(failed).__name__}: {failed}"
            return [], f"lookup of {c.key} = {shown(k)} failed: {why}"
        if found.__class__ is KeyRejected:
            return [], f"lookup of {c.key} = {shown(k)} failed: {found.reason}"
        if found is _MISSING:
            if c.on_missing == "keep":
                return [value], None
            if c.on_missing == "drop":
                return [], None
            return [], f"no {c.source} row for {c.key} = {shown(k)}"
        if c.prefix:
            return [{**value, **{c.prefix + col: v for col, v in found.items()}}], None
        return [{**value, **found}], None

    def describe(self) -> str:
        c = self.config
        target = c.url if c.source == "http" else "(dsn)"
        return f"lookup: {c.key} in {c.source} {target} (cache {c.cache_size}, ttl {c.cache_ttl:g}s, missing: {c.on_missing})"
