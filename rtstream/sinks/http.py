"""`type = "http"`: deliver each window's rows to a webhook or API, in batches.

Every request carries an `Idempotency-Key` derived from (pipeline, window, sink, batch number) and
the batch's content: a retry or a replay that sends the same rows sends the same key, so a receiver
can drop repeats, while two replicas each writing their own partitions' share of one window send
different keys (with the window alone as the key, a receiver dropping repeats lost one share). The sink sends each batch once per attempt
and never retries by itself: the sink's failure policy (`retries`, `retry_delay`, `timeout`,
`on_failure`) is the only retry layer. A connect error, a timeout or a 5xx fails the attempt; a 429
or 503 with Retry-After raises `SinkBackpressure`, and the policy waits what the receiver asked
(capped by `max_retry_delay`). Batches already delivered (or refused) in an earlier attempt of the
same window are not sent again. Another 4xx is final: that batch's rows go to dead letters with
the status and an excerpt of the response, and the rest of the window is delivered.

`max_retries` (per request, before) is still accepted so old configs load, but ignored, with a
warning at start: one `retries = 1` now means two attempts in all, not two times six.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any, Literal

import aiohttp
import orjson
from pydantic import Field

from rtstream.connect.http_client import RETRY_STATUSES, HttpAuth, retry_after
from rtstream.model.errors import RowsRejected, SinkBackpressure, SinkError
from rtstream.model.registry import register
from rtstream.model.window import Window
from rtstream.sinks.base import Sink, SinkConfig
from rtstream.sinks.rows import encodable_rows

log = logging.getLogger("rtstream.sink.http")


class HttpSinkConfig(SinkConfig, HttpAuth):
    url: str = Field(description="rows are sent here")
    method: Literal["POST", "PUT"] = Field(default="POST", description="the HTTP method")
    batch_size: int = Field(default=500, ge=1, description="rows per request")
    format: Literal["json", "ndjson"] = Field(default="json",
        description="\"json\": an array; \"ndjson\": one row a line")
    max_retries: int | None = Field(default=None, ge=0, description=(
        "deprecated and ignored: the sink never retries inside a write; use `retries` (the sink's "
        "failure policy, the one retry layer)"))


def idempotency_key(pipeline: str, window: Window, sink: str, batch_no: int, body: bytes) -> str:
    digest = hashlib.sha256(f"{pipeline}|{window.start_ms}|{window.end_ms}|{window.key}|{window.ident}|{sink}|{batch_no}|".encode())
    if not window.final:  # each running result is new content: it must not be taken for a retry
        digest.update(f"running|{window.input_count}|".encode())
    digest.update(body)
    return digest.hexdigest()[:32]


@register("sink", "http")
class HttpSink(Sink):
    Config = HttpSinkConfig

    async def start(self) -> None:
        if self.config.max_retries is not None:
            log.warning("%s: max_retries is deprecated and ignored: the sink sends each batch once per attempt "
                        "and its policy (retries = %s) is the only retry layer", self.name,
                        self.config.retries if self.config.retries is not None else "the [defaults] value",
                        extra={"component": self.name})
        self.http = self.config.session()
        # batch number -> None (delivered) or why it was refused, for the window being written: an
        # attempt after a failed one sends only what is still missing
        self._progress: tuple[tuple[Any, ...], dict[int, str | None]] | None = None

    def body(self, rows: list[dict[str, Any]]) -> tuple[bytes, str]:
        if self.config.format == "ndjson":
            return b"".join(orjson.dumps(r, default=str) + b"\n" for r in rows), "application/x-ndjson"
        return orjson.dumps(rows, default=str), "application/json"

    async def write(self, window: Window, rows: list[dict[str, Any]]) -> None:
        rows, unencodable = encodable_rows(rows)
        ident = (window.start_ms, window.end_ms, window.key, window.ident, window.final, window.input_count, len(rows))
        if self._progress is None or self._progress[0] != ident:
            self._progress = (ident, {})
        done = self._progress[1]
        size = self.config.batch_size
        batches = [rows[i:i + size] for i in range(0, len(rows), size)]
        todo = [n for n in range(len(batches)) if n not in done]
        results = await asyncio.gather(*(self._send(window, n, batches[n]) for n in todo), return_exceptions=True)
        errors: list[BaseException] = []
        for n, result in zip(todo, results, strict=True):
            if isinstance(result, BaseException):
                errors.append(result)
            else:
                done[n] = result
        if errors:
            waits = [e for e in errors if isinstance(e, SinkBackpressure)]
            raise waits[0] if len(waits) == len(errors) else next(e for e in errors if e not in waits)
        self._progress = None
        rejected = [(batches[n], why) for n, why in sorted(done.items()) if why is not None]
        rejected += unencodable
        if rejected:
            raise RowsRejected(self.name, rejected)

    async def _send(self, window: Window, batch_no: int, rows: list[dict[str, Any]]) -> str | None:
        """Deliver one batch, once; returns a reason when the receiver refused it for good."""
        c = self.config
        body, ctype = self.body(rows)
        headers = {"Content-Type": ctype,
                   "Idempotency-Key": idempotency_key(self.context.pipeline, window, self.name, batch_no, body)}
        try:
            async with self.http.request(c.method, c.url, data=body, headers=headers) as resp:
                if resp.status < 300:
                    return None
                text = (await resp.content.read(2048)).decode("utf-8", errors="replace")[:500]  # a huge body stays unread
                if resp.status not in RETRY_STATUSES and resp.status != 408:
                    return f"HTTP {resp.status}: {text}"
                wait = retry_after(resp.headers)
                message = f"{c.url}: HTTP {resp.status}: {text[:200]}"
                if wait is not None and resp.status in (429, 503):
                    raise SinkBackpressure(self.name, f"{message} (Retry-After {wait:g}s)", wait)
                raise SinkError(self.name, message)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SinkError(self.name, f"{c.url}: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if hasattr(self, "http"):
            await self.http.close()

    def describe(self) -> str:
        c = self.config
        return f"http: {c.method} {c.url} ({c.format}, {c.batch_size} rows per request)"
