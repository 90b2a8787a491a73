"""`type = "http"`: deliver each window's rows to a webhook or API, in batches.

Every request carries an `Idempotency-Key` derived from (pipeline, window, sink, batch number), the
same on every replay, so a receiver can drop repeats. Connect errors, 5xx and 429 are retried with
capped exponential backoff and jitter (Retry-After honoured) up to `max_retries`, then the whole
write fails and is retried later by the flusher; other 4xx are final, and those rows go to dead
letters with the status and an excerpt of the response.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any, Literal

import aiohttp
import orjson
from pydantic import Field

from rtstream.core.record import Window
from rtstream.core.registry import register
from rtstream.core.retry import backoff_delay
from rtstream.errors import RowsRejected, SinkError
from rtstream.http_common import RETRY_STATUSES, HttpAuth, retry_after
from rtstream.sinks.base import Sink, SinkConfig

log = logging.getLogger("rtstream.sink.http")
REQUEST_RETRY_DELAY = 0.2  # between the quick retries of one request; the write as a whole follows the policy
REQUEST_RETRY_CAP = 5.0


class HttpSinkConfig(SinkConfig, HttpAuth):
    url: str
    method: Literal["POST", "PUT"] = "POST"
    batch_size: int = Field(default=500, ge=1)
    format: Literal["json", "ndjson"] = "json"
    max_retries: int = Field(default=5, ge=0, description="per request, within one write")


def idempotency_key(pipeline: str, window: Window, sink: str, batch_no: int) -> str:
    raw = f"{pipeline}|{window.start_ms}|{window.end_ms}|{window.key}|{sink}|{batch_no}"
    if not window.final:  # each running result is new content: it must not be taken for a retry
        raw += f"|running|{window.input_count}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


@register("sink", "http")
class HttpSink(Sink):
    Config = HttpSinkConfig

    async def start(self) -> None:
        self.http = self.config.session()

    def body(self, rows: list[dict[str, Any]]) -> tuple[bytes, str]:
        if self.config.format == "ndjson":
            return b"".join(orjson.dumps(r, default=str) + b"\n" for r in rows), "application/x-ndjson"
        return orjson.dumps(rows, default=str), "application/json"

    async def write(self, window: Window, rows: list[dict[str, Any]]) -> None:
        size = self.config.batch_size
        batches = [rows[i:i + size] for i in range(0, len(rows), size)]
        results = await asyncio.gather(*(self._send(window, n, b) for n, b in enumerate(batches)),
                                       return_exceptions=True)
        rejected = [(b, r) for b, r in zip(batches, results, strict=True) if isinstance(r, str)]
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        if rejected:
            raise RowsRejected(self.name, rejected)

    async def _send(self, window: Window, batch_no: int, rows: list[dict[str, Any]]) -> str | None:
        """Deliver one batch; returns a reason when the receiver refused it for good."""
        c = self.config
        body, ctype = self.body(rows)
        headers = {"Content-Type": ctype,
                   "Idempotency-Key": idempotency_key(self.context.pipeline, window, self.name, batch_no)}
        last = ""
        for attempt in range(1, c.max_retries + 2):
            wait = None
            try:
                async with self.http.request(c.method, c.url, data=body, headers=headers) as resp:
                    if resp.status < 300:
                        return None
                    text = (await resp.text(errors="replace"))[:500]
                    if resp.status not in RETRY_STATUSES:
                        return f"HTTP {resp.status}: {text}"
                    wait, last = retry_after(resp.headers), f"HTTP {resp.status}: {text[:200]}"
            except (TimeoutError, aiohttp.ClientError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt <= c.max_retries:
                delay = min(wait if wait is not None else backoff_delay(attempt, REQUEST_RETRY_DELAY, REQUEST_RETRY_CAP),
                            REQUEST_RETRY_CAP)
                await asyncio.sleep(delay)
        raise SinkError(self.name, f"{c.url}: {last} after {c.max_retries + 1} attempts")

    async def close(self) -> None:
        if hasattr(self, "http"):
            await self.http.close()

    def describe(self) -> str:
        c = self.config
        return f"http: {c.method} {c.url} ({c.format}, {c.batch_size} rows per request)"
