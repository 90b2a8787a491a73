"""`type = "http_poll"`: fetch an API on a clock-aligned interval, as the cron DAG's fetch_data did.

Each poll follows pagination (a next link or a cursor), honours ETag / Last-Modified, and retries
timeouts, 5xx and 429 with capped exponential backoff and jitter (Retry-After honoured). Fetched
records are appended to a local spool with their fetch time, together with the new cursor, in one
durable write: the spool is what the pipeline reads and commits, so a restart never asks the API
again for what it already gave, and `time = "source"` windows replay the same.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import aiohttp
import orjson
from pydantic import Field

from rtstream.connect.http_client import RETRY_STATUSES, HttpAuth, retry_after
from rtstream.model.durations import Duration
from rtstream.model.registry import register
from rtstream.sources.spool.spooled_source import SpooledConfig, SpooledSource
from rtstream.support.backoff import backoff_delay

log = logging.getLogger("rtstream.source.http_poll")


class HttpPollConfig(SpooledConfig, HttpAuth):
    url: str = Field(description="the URL polled")
    interval: Duration = Field(default=300.0, description="time between polls")
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, str | int | float] = Field(default={}, description="query parameters of each request")
    records: str = Field(default="", description='JSON pointer to the list of records, e.g. "/data/items"')
    next: str | None = Field(default=None, description='JSON pointer to the next page URL, or "link" for the Link header')
    cursor_field: str | None = Field(default=None,
        description="a record field whose last value is sent on the next poll")
    cursor_param: str | None = Field(default=None, description="the query parameter the cursor is sent as")
    max_pages: int = Field(default=1000, ge=1, description="pages followed in one poll at most")
    max_attempts: int = Field(default=8, ge=1, description="per request, before the poll is given up until the next tick")
    retry_delay: Duration = Field(default=0.5, description="the first backoff of a failed request")
    max_retry_delay: Duration = Field(default=30.0, description="cap of the backoff")


def json_pointer(doc: Any, pointer: str) -> Any:
    """RFC 6901: `"/data/items"` -> doc["data"]["items"]; "" is the document itself."""
    if not pointer:
        return doc
    for raw in pointer.lstrip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


class PollFailed(Exception):
    pass


@register("source", "http_poll")
class HttpPollSource(SpooledSource):
    Config = HttpPollConfig

    async def start(self) -> None:
        c = self.config
        self.open_spool()
        state = orjson.loads(self.spool.last_marker() or b"{}")
        self.cursor: Any = state.get("cursor")
        self.etag: str | None = state.get("etag")
        self.last_modified: str | None = state.get("last_modified")
        self.fetched_through = int(state.get("through", 0))  # the end of the last interval polled
        self.http = c.session()
        self.polls = 0
        self.start_ticker(c.interval)

    async def fetch_once(self) -> int:
        if self.interval_end_ms() <= self.fetched_through and not self._once:
            return 0  # this interval was polled before a restart: wait for the next tick
        return await self.poll_once()

    async def poll_once(self) -> int:
        """One poll: every page, spooled with the new cursor in one write. Returns records fetched."""
        c = self.config
        url: str | None = c.url
        params: dict[str, Any] = dict(c.params)
        if c.cursor_param and self.cursor is not None:
            params[c.cursor_param] = self.cursor
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        fetched: list[bytes] = []
        cursor, etag, modified = self.cursor, self.etag, self.last_modified
        through = self.interval_end_ms()
        arrival = through - 1  # the poll at 12:05 is the run of [12:00, 12:05): stored when that window closes
        pages = 0
        while url is not None and pages < c.max_pages:
            status, doc, resp_headers = await self._request(url, params if pages == 0 else None,
                                                            headers if pages == 0 else {})
            pages += 1
            if status == 304:
                break
            if pages == 1:
                etag = resp_headers.get("ETag", etag)
                modified = resp_headers.get("Last-Modified", modified)
            try:
                items = json_pointer(doc, c.records)
            except (KeyError, IndexError, TypeError, ValueError):
                raise PollFailed(f"no records at {c.records!r} in the response of {url}") from None
            if isinstance(items, dict):
                items = [items]
            for item in items:
                fetched.append(orjson.dumps(item))
                if c.cursor_field and isinstance(item, dict) and item.get(c.cursor_field) is not None:
                    v = item[c.cursor_field]
                    if cursor is None or v > cursor:
                        cursor = v
            url = self._next_url(url, doc, resp_headers)
        state = orjson.dumps({"cursor": cursor, "etag": etag, "last_modified": modified, "through": through})
        if fetched or (cursor, etag, modified) != (self.cursor, self.etag, self.last_modified):
            await self.spool.append(fetched, arrival_ms=arrival, marker=state)
        self.cursor, self.etag, self.last_modified = cursor, etag, modified
        self.fetched_through = max(self.fetched_through, through)
        self.polls += 1
        return len(fetched)

    def _next_url(self, url: str, doc: Any, headers: Any) -> str | None:
        nxt = self.config.next
        if nxt is None:
            return None
        if nxt == "link":
            link = headers.get("Link", "")
            for part in link.split(","):
                if 'rel="next"' in part:
                    return self._same_origin(urljoin(url, part.split(";")[0].strip().strip("<>")))
            return None
        try:
            target = json_pointer(doc, nxt)
        except (KeyError, IndexError, TypeError):
            return None
        return self._same_origin(urljoin(url, str(target))) if target else None

    def _same_origin(self, nxt: str) -> str:
        """The session sends its credentials with every request: a next page on another origin (a
        compromised or confused API) would receive them, so it is refused."""
        def origin(u: str) -> tuple[str, str | None, int | None]:
            parts = urlsplit(u)
            return parts.scheme.lower(), parts.hostname, parts.port
        try:
            same = origin(nxt) == origin(self.config.url)
        except ValueError:
            same = False
        if not same:
            raise PollFailed(f"next page {nxt[:200]} is not on {self.config.url}'s origin; credentials are "
                             "sent to that origin only")
        return nxt

    async def _request(self, url: str, params: dict[str, Any] | None, headers: dict[str, str]) -> tuple[int, Any, Any]:
        c = self.config
        for attempt in range(1, c.max_attempts + 1):
            try:
                async with self.http.request(c.method, url, params=params, headers=headers) as resp:
                    if resp.status == 304:
                        return 304, None, resp.headers
                    if resp.status in RETRY_STATUSES:
                        wait = retry_after(resp.headers)
                        problem = f"HTTP {resp.status}"
                    elif resp.status >= 400:
                        raise PollFailed(f"{url}: HTTP {resp.status}: {(await resp.text())[:200]}")
                    else:
                        return resp.status, orjson.loads(await resp.read()), resp.headers
            except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError) as exc:
                wait, problem = None, f"{type(exc).__name__}: {exc}"
            delay = wait if wait is not None else backoff_delay(attempt, c.retry_delay, c.max_retry_delay)
            delay = min(delay, c.max_retry_delay)
            log.warning("%s: %s from %s (attempt %d/%d, retry in %.1fs)", self.name, problem, url, attempt,
                        c.max_attempts, delay, extra={"component": self.name})
            if attempt < c.max_attempts:
                await asyncio.sleep(delay)
        raise PollFailed(f"{url}: gave up after {c.max_attempts} attempts")

    async def close(self) -> None:
        if hasattr(self, "http"):
            await self.http.close()
        await super().close()

    def describe(self) -> str:
        c = self.config
        return f"http_poll: {c.method} {c.url} every {c.interval:g}s" + (
            f", cursor {c.cursor_field} -> ?{c.cursor_param}" if c.cursor_field else "")
