"""`type = "http_ingest"`: producers push JSON over HTTP; accepted records are on disk before 202.

POST a JSON object, a JSON array of objects, or NDJSON (`application/x-ndjson`), optionally gzipped
(`Content-Encoding: gzip`). Every malformed request gets a 4xx with a one-line reason, never a 5xx:
a body that is not JSON, or a record nested deeper than MAX_DEPTH levels, is refused whole with 400
and the line (or item) of the first bad record; a body over `max_body` gets 413; a wrong or
undecodable Authorization header 401 or 400; a body not complete within `body_timeout` 408.

202 means the request's records are in the spool (on disk, per `fsync`); a request that is not
stored is never answered 2xx, and one that is stored never 5xx. A spool over `max_spool`, or a disk
that is full, answers 503 with Retry-After, so producers back off rather than the daemon growing
without bound. Connections are limited as every rtstream HTTP server's are (see rtstream.connect.http_guard).
"""

from __future__ import annotations

import errno
import logging
import zlib
from typing import Any

import orjson
from aiohttp import web
from pydantic import Field, SecretStr, field_validator

from rtstream.connect.addresses import is_loopback
from rtstream.connect.http_guard import BodyTimeout, Guard, HttpLimits, answer_and_close, bearer_problem, read_body
from rtstream.engine.decode import not_an_object
from rtstream.model.durations import Duration
from rtstream.model.registry import register
from rtstream.sources.spool.spool_file import SpoolFull
from rtstream.sources.spool.spooled_source import SpooledConfig, SpooledSource

log = logging.getLogger("rtstream.source.http_ingest")
# Deeper records are refused at the door: orjson writes at most 254 levels, and a record is written
# again inside a dead letter's envelope; 200 leaves that room and is far beyond any real document.
MAX_DEPTH = 200
_ENCODER_DEPTH = 254
_FULL_DISK = {errno.ENOSPC, errno.EDQUOT}


class HttpIngestConfig(SpooledConfig, HttpLimits):
    listen: str = Field(default="127.0.0.1:8081", description="HOST:PORT to accept POSTed records on")
    path: str = Field(default="/ingest", description="the URL path records are POSTed to")
    token: SecretStr | None = Field(default=None, description="callers must send Authorization: Bearer TOKEN")
    max_body: int = Field(default=10 * 1024 * 1024, ge=1, description="bytes one request may carry")
    retry_after: Duration = Field(default=1.0, description="the Retry-After answered while the spool is full")

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ValueError(f"listen must be HOST:PORT, e.g. 127.0.0.1:8081 (got {v!r})")
        return v


class BadBody(ValueError):
    pass


def _invalid(where: str, exc: orjson.JSONDecodeError) -> BadBody:
    if "depth" in exc.msg or "recursion" in exc.msg:
        return BadBody(f"{where}: nested deeper than {MAX_DEPTH} levels")
    return BadBody(f"{where}: invalid JSON: {exc.msg}")


def encode_record(item: Any, where: str) -> bytes:
    """A record as compact JSON for the spool; BadBody when it is not an object or nests deeper
    than MAX_DEPTH (checked by the C encoder itself: the record is wrapped in enough one-item lists
    to make any deeper record overflow its limit)."""
    if not isinstance(item, dict):
        raise BadBody(f"{where}: {not_an_object(item)}")
    pad = _ENCODER_DEPTH - MAX_DEPTH
    wrapped: Any = item
    for _ in range(pad):
        wrapped = [wrapped]
    try:
        return orjson.dumps(wrapped)[pad:-pad]
    except orjson.JSONEncodeError:
        raise BadBody(f"{where}: nested deeper than {MAX_DEPTH} levels") from None


def parse_body(body: bytes, content_type: str) -> list[bytes]:
    """The records of a JSON object, array or NDJSON body, encoded for the spool; BadBody names the
    first bad line (or array item)."""
    text = body.strip()
    if not text:
        return []
    if "ndjson" not in content_type and "jsonl" not in content_type and text[:1] in (b"{", b"["):
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            if text[:1] == b"[" or b"\n" not in text:
                raise _invalid(f"line {exc.lineno}", exc) from None
        else:
            items = doc if isinstance(doc, list) else [doc]
            if not isinstance(doc, list):
                return [encode_record(doc, "line 1")]
            return [encode_record(item, f"item {i + 1}") for i, item in enumerate(items)]
    out = []
    for lineno, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise _invalid(f"line {lineno}", exc) from None
        out.append(encode_record(item, f"line {lineno}"))
    return out


@register("source", "http_ingest")
class HttpIngestSource(SpooledSource):
    Config = HttpIngestConfig

    async def start(self) -> None:
        c = self.config
        self.open_spool()
        self.accepted = 0
        self.refused = 0
        self.guard = Guard(c, log, self.name)
        app = web.Application(client_max_size=c.max_body, middlewares=[self.guard.middleware])
        app.router.add_post(c.path, self._ingest)
        self._runner = self.guard.runner(app)
        await self._runner.setup()
        await self.guard.serve(self._runner, c.listen)
        log.info("%s: accepting POST %s on %s", self.name, c.path, c.listen, extra={"component": self.name})
        if c.token is None and not is_loopback(c.listen.rpartition(":")[0]):
            log.warning("%s: %s is reachable from other machines and takes records from anyone: set a token",
                        self.name, c.listen, extra={"component": self.name})

    def _refuse(self, status: int, error: str, headers: dict[str, str] | None = None) -> web.Response:
        self.refused += 1
        self.guard.rejects.note(f"requests refused ({status})", error)
        return _json(status, {"error": error, "accepted": 0}, headers)

    async def _ingest(self, request: web.Request) -> web.StreamResponse:
        c = self.config
        if c.token is not None:
            problem = bearer_problem(request, c.token.get_secret_value())
            if problem is not None:
                return self._refuse(*problem)
        if request.content_length is not None and request.content_length > c.max_body:
            return self._refuse(413, f"body over max_body = {c.max_body} bytes")
        try:
            body = await read_body(request, c.body_timeout)
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(413, f"body over max_body = {c.max_body} bytes")
        except BodyTimeout:
            return await answer_and_close(request, self._refuse(
                408, f"body not complete within {c.body_timeout:g}s (body_timeout)"))
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", "x-gzip"):
            return self._refuse(415, "unsupported Content-Encoding (gzip or none)")
        if encoding != "identity":
            try:
                body = _gunzip(body, c.max_body)
            except (OSError, EOFError, zlib.error):
                return self._refuse(400, "invalid gzip body")
            except OverflowError:
                return self._refuse(413, f"body over max_body = {c.max_body} bytes once decompressed")
        try:
            records = parse_body(body, request.content_type)
        except BadBody as exc:
            return self._refuse(400, str(exc))
        retry = {"Retry-After": str(max(1, round(c.retry_after)))}
        try:
            await self.spool.append(records)
        except SpoolFull:
            return self._refuse(503, "spool full; retry later", retry)
        except OSError as exc:  # the spool writes a request whole or not at all: nothing of it is stored
            why = "disk full" if exc.errno in _FULL_DISK else (exc.strerror or type(exc).__name__)
            return self._refuse(503, f"spool cannot be written ({why}); retry later", retry)
        self.accepted += len(records)
        return _json(202, {"accepted": len(records)})

    async def close(self) -> None:
        if hasattr(self, "_runner"):
            await self._runner.cleanup()
            self.guard.close()
        await super().close()

    def describe(self) -> str:
        c = self.config
        return (f"http_ingest: POST http://{c.listen}{c.path}{' (bearer token)' if c.token else ' (NO TOKEN)'}, "
                f"spool fsync {c.fsync}; headers within {c.header_timeout:g}s, body within {c.body_timeout:g}s, "
                f"at most {c.max_connections} connections")


def _gunzip(body: bytes, limit: int) -> bytes:
    if body[:2] != b"\x1f\x8b":
        raise zlib.error("not gzip")
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = d.decompress(body, limit + 1)
    if len(out) > limit:
        raise OverflowError
    if not d.eof:
        raise EOFError("truncated gzip body")
    return out


def _json(status: int, doc: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(doc), content_type="application/json", headers=headers)

