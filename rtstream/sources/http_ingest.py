"""`type = "http_ingest"`: producers push JSON over HTTP; accepted records are on disk before 202.

POST a JSON object, a JSON array of objects, or NDJSON (`application/x-ndjson`), optionally gzipped
(`Content-Encoding: gzip`). A malformed body is refused whole with 400 and the line of the first bad
record; a body over `max_body` gets 413; a spool over `max_spool` gets 503 with Retry-After, so
producers back off rather than the daemon growing without bound.
"""

from __future__ import annotations

import hmac
import logging
import zlib
from typing import Any

import orjson
from aiohttp import web
from pydantic import Field, SecretStr, field_validator

from rtstream.config.durations import Duration
from rtstream.core.registry import register
from rtstream.sources.spool import SpoolFull
from rtstream.sources.spooled import SpooledConfig, SpooledSource

log = logging.getLogger("rtstream.source.http_ingest")


class HttpIngestConfig(SpooledConfig):
    listen: str = "127.0.0.1:8081"
    path: str = "/ingest"
    token: SecretStr | None = None
    max_body: int = Field(default=10 * 1024 * 1024, ge=1)
    retry_after: Duration = 1.0

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ValueError(f"listen must be HOST:PORT, e.g. 127.0.0.1:8081 (got {v!r})")
        return v


class BadBody(ValueError):
    pass


def parse_body(body: bytes, content_type: str) -> list[dict[str, Any]]:
    """Records from a JSON object, array or NDJSON body; BadBody names the first bad line."""
    text = body.strip()
    if not text:
        return []
    if "ndjson" not in content_type and "jsonl" not in content_type and text[:1] in (b"{", b"["):
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            if text[:1] == b"[" or b"\n" not in text:
                raise BadBody(f"line {exc.lineno}: invalid JSON: {exc.msg}") from None
        else:
            items = doc if isinstance(doc, list) else [doc]
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    raise BadBody(f"item {i + 1}: expected a JSON object, got {type(item).__name__}")
            return items
    out = []
    for lineno, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise BadBody(f"line {lineno}: invalid JSON: {exc.msg}") from None
        if not isinstance(item, dict):
            raise BadBody(f"line {lineno}: expected a JSON object, got {type(item).__name__}")
        out.append(item)
    return out


@register("source", "http_ingest")
class HttpIngestSource(SpooledSource):
    Config = HttpIngestConfig

    async def start(self) -> None:
        c = self.config
        self.open_spool()
        self.accepted = 0
        self.refused = 0
        app = web.Application(client_max_size=c.max_body)
        app.router.add_post(c.path, self._ingest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        host, _, port = c.listen.rpartition(":")
        site = web.TCPSite(self._runner, host.strip("[]"), int(port))
        await site.start()
        log.info("%s: accepting POST %s on %s", self.name, c.path, c.listen, extra={"component": self.name})

    async def _ingest(self, request: web.Request) -> web.Response:
        c = self.config
        if c.token is not None:
            given = request.headers.get("Authorization", "")
            want = f"Bearer {c.token.get_secret_value()}"
            if not hmac.compare_digest(given.encode(), want.encode()):
                return _json(401, {"error": "missing or wrong bearer token"})
        if request.content_length is not None and request.content_length > c.max_body:
            return _json(413, {"error": f"body over max_body = {c.max_body} bytes"})
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _json(413, {"error": f"body over max_body = {c.max_body} bytes"})
        if request.headers.get("Content-Encoding", "").lower() == "gzip" and body[:2] == b"\x1f\x8b":
            try:
                body = _gunzip(body, c.max_body)
            except (OSError, EOFError, zlib.error):
                return _json(400, {"error": "invalid gzip body"})
            except OverflowError:
                return _json(413, {"error": f"body over max_body = {c.max_body} bytes once decompressed"})
        try:
            items = parse_body(body, request.content_type)
        except BadBody as exc:
            self.refused += 1
            return _json(400, {"error": str(exc), "accepted": 0})
        try:
            await self.spool.append([orjson.dumps(i) for i in items])
        except SpoolFull:
            return _json(503, {"error": "spool full; retry later"},
                         headers={"Retry-After": str(max(1, round(c.retry_after)))})
        self.accepted += len(items)
        return _json(202, {"accepted": len(items)})

    async def close(self) -> None:
        if hasattr(self, "_runner"):
            await self._runner.cleanup()
        await super().close()

    def describe(self) -> str:
        c = self.config
        return f"http_ingest: POST http://{c.listen}{c.path}{' (bearer token)' if c.token else ''}, spool fsync {c.fsync}"


def _gunzip(body: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = d.decompress(body, limit + 1)
    if len(out) > limit:
        raise OverflowError
    return out


def _json(status: int, doc: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(doc), content_type="application/json", headers=headers)

