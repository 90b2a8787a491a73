"""What every HTTP server of rtstream (ingest, admin) does about clients that misbehave.

aiohttp's server has no timeout for a request's headers, so a client that sends them a byte at a
time (a slowloris) holds its connection, and a file descriptor, for as long as it likes. Here each
connection goes through `_Connection`, a thin protocol in front of aiohttp's own, which

- refuses connections beyond `max_connections` at once (503, Retry-After), so slow clients can never
  take every descriptor and starve real requests or the admin server;
- closes a connection whose request headers are not complete `header_timeout` after its first byte
  (or after the connection opened), with a 408;
- closes a keep-alive connection idle for `keepalive_timeout`.

The body of a request is read under `body_timeout` by the handler (`read_body`). Every refusal is
logged through `RejectLog`: the first of each kind at once, then one summary line per interval, so a
flood of bad clients costs a few lines of log, not megabytes.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from rtstream.connect.http_limits import HttpLimits
from rtstream.connect.http_rejects import ProtocolLog, RejectLog
from rtstream.connect.listen_error import ListenError

MAX_DISCARD = 1 << 20  # bytes of a refused request read away before its connection is closed
SPARE_DESCRIPTORS = 512  # beside the servers' connections: accepts in flight (a backlog per server), files, sinks
_reserved = 0  # connections the servers of this process may hold at once


def _answer(transport: asyncio.BaseTransport, status: int, reason: str, error: str,
            headers: dict[str, str] | None = None) -> None:
    """Write a whole response straight to the socket and close it (no handler is involved)."""
    body = orjson.dumps({"error": error})
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n" \
           f"Connection: close\r\n" + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()) + "\r\n"
    try:
        transport.write(head.encode() + body)  # type: ignore[attr-defined]
    except (OSError, RuntimeError):
        pass
    _discard_unread(transport)
    transport.close()


def _discard_unread(transport: asyncio.BaseTransport) -> None:
    """Read away what the client already sent, so that closing sends FIN after the answer, not RST.

    A socket closed with unread bytes in its receive queue resets the connection (RFC 2525), and a
    reset makes the client's kernel drop the answer it had not read yet: under load, when a refused
    client's request head arrived before the accept, it saw a closed connection instead of the 503.
    The socket is non-blocking; this reads only what is queued, at most MAX_DISCARD bytes.
    """
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    left = MAX_DISCARD
    try:
        while left > 0:
            got = os.read(sock.fileno(), min(left, 65536))
            if not got:
                return
            left -= len(got)
    except OSError:  # EAGAIN: nothing more is queued; or the client is gone already
        return


class _Connection(asyncio.Protocol):
    """One client connection: aiohttp's protocol behind a connection cap and a header deadline."""

    def __init__(self, guard: Guard):
        self.guard = guard
        self.inner: Any = None  # aiohttp's RequestHandler, once the connection is admitted
        self.transport: asyncio.BaseTransport | None = None
        self.phase = "head"  # head: waiting for headers; request: in a handler; idle: keep-alive
        self.received = 0  # bytes of the request whose headers are awaited
        self.pipelined = False
        self._timer: asyncio.TimerHandle | None = None

    # --- asyncio's protocol interface ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        g = self.guard
        if len(g.open) >= g.limits.max_connections:
            g.rejects.note("connections over max_connections (503)", f"max_connections = {g.limits.max_connections}")
            _answer(transport, 503, "Service Unavailable",
                    f"too many connections (max_connections = {g.limits.max_connections}); retry later",
                    {"Retry-After": "1"})
            return
        g.open.add(self)
        self.inner = g.make_handler()
        g.by_handler[self.inner] = self
        self.inner.connection_made(transport)
        self._arm(g.limits.header_timeout, "head")

    def data_received(self, data: bytes) -> None:
        if self.inner is None:
            return
        if self.phase == "idle":
            self._arm(self.guard.limits.header_timeout, "head")
        elif self.phase == "request":
            self.pipelined = True
        if self.phase == "head":
            self.received += len(data)
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None  # type: ignore[no-any-return]

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self.guard.open.discard(self)
        if self.inner is not None:
            self.guard.by_handler.pop(self.inner, None)
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    # --- the request's life, told by the middleware ---------------------------------------------
    def request_started(self) -> None:
        self._cancel()
        self.phase, self.pipelined = "request", False

    def request_finished(self) -> None:
        # the response is still being written: a client that does not read it is dropped as idle
        limits = self.guard.limits
        if self.pipelined:
            self._arm(limits.header_timeout, "head")
        else:
            self._arm(limits.keepalive_timeout, "idle")

    # --- the deadline ------------------------------------------------------------------------------
    def _arm(self, seconds: float, phase: str) -> None:
        self._cancel()
        self.phase = phase
        if phase == "head":
            self.received = 0
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expired)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self.transport is None or self.transport.is_closing():
            return
        if self.phase == "head":
            limit = self.guard.limits.header_timeout
            self.guard.rejects.note("connections dropped: headers not complete within header_timeout (408)",
                                    f"header_timeout = {limit:g}s")
            if self.received:
                _answer(self.transport, 408, "Request Timeout",
                        f"request headers not complete within {limit:g}s (header_timeout)")
                return
        self.transport.close()  # idle keep-alive, or nothing sent at all


class Guard:
    """The limits of one server: its connections, their deadlines, its log of refusals."""

    def __init__(self, limits: HttpLimits, log: logging.Logger, server: str):
        self.limits = limits
        self.rejects = RejectLog(log, server)
        self.open: set[_Connection] = set()
        self.by_handler: dict[Any, _Connection] = {}
        self.make_handler: Callable[[], Any] = lambda: None
        self.protocol_log = logging.getLogger(f"{log.name}.{server}.protocol")  # one per server
        self.protocol_log.propagate = False
        self.protocol_log.handlers[:] = [ProtocolLog(self.rejects)]

    def runner(self, app: web.Application) -> web.AppRunner:
        """An AppRunner whose aiohttp protocol logs through the RejectLog. Bodies are not decompressed
        by aiohttp (a broken gzip body would be a 500 there): handlers that take them do it, bounded."""
        # aiohttp arms its keep-alive timer when a connection opens (3.10+), not only between requests:
        # left below header_timeout it closed a stalled request head bare, before our 408
        limits = self.limits
        return web.AppRunner(app, access_log=None, logger=self.protocol_log, auto_decompress=False,
                             keepalive_timeout=max(limits.keepalive_timeout, limits.header_timeout) + 1)

    async def serve(self, runner: web.AppRunner, listen: str) -> None:
        """Listen on HOST:PORT (IPv6 in brackets) with every connection guarded."""
        host, _, port = listen.rpartition(":")
        try:
            await _GuardedSite(runner, host.strip("[]"), int(port), self).start()
        except OSError as exc:  # asyncio's text repeats the address as a tuple after "error while attempting"
            raise ListenError(listen, exc) from None
        _reserve_descriptors(self.limits.max_connections, self.rejects.log)

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        conn = self.by_handler.get(request.protocol)
        if conn is not None:
            conn.request_started()
        try:
            return await handler(request)
        finally:
            if conn is not None:
                conn.request_finished()

    def close(self) -> None:
        self.rejects.close()


class _GuardedSite(web.BaseSite):
    __slots__ = ("_host", "_port", "_guard")

    def __init__(self, runner: web.AppRunner, host: str, port: int, guard: Guard):
        super().__init__(runner)
        self._host, self._port, self._guard = host, port, guard

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._guard.make_handler = server
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self._guard), self._host, self._port,
                                                reuse_address=True, backlog=128)


def _reserve_descriptors(connections: int, log: logging.Logger) -> None:
    """Make room for `connections` more open sockets: raise the soft open-file limit toward the hard
    one if needed (as Go's runtime does), else say that max_connections cannot all be served."""
    global _reserved
    _reserved += connections
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = _reserved + SPARE_DESCRIPTORS
        if soft != resource.RLIM_INFINITY and soft < want:
            new = want if hard == resource.RLIM_INFINITY else min(want, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
    except (ImportError, ValueError, OSError):
        return
    if soft < want:
        log.warning("the HTTP servers may hold %d connections (max_connections), but the open-file limit is %d: "
                    "raise it (ulimit -n) or lower max_connections", _reserved, soft)


class BodyTimeout(Exception):
    pass


async def read_body(request: web.Request, timeout: float) -> bytes:
    """The request's body, or BodyTimeout when it is not all there within `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        raise BodyTimeout from None


async def answer_and_close(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Send `response`, then close the connection at once (no lingering over an unfinished body)."""
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    if request.transport is not None:
        request.transport.close()
    return response


def bearer_problem(request: web.Request, token: str) -> tuple[int, str] | None:
    """None when the request carries `Authorization: Bearer <token>`, else (status, reason).
    Never raises: a header that is not UTF-8 is a 400, anything else wrong a 401."""
    raw = request.headers.get("Authorization")
    if raw is None:
        return 401, "missing bearer token (Authorization: Bearer <token>)"
    try:
        given = raw.encode("utf-8")  # aiohttp keeps undecodable bytes as surrogates: refused here
    except UnicodeEncodeError:
        return 400, "the Authorization header is not valid UTF-8"
    scheme, _, credential = given.strip().partition(b" ")
    if scheme.lower() != b"bearer" or not credential.strip():
        return 401, "expected Authorization: Bearer <token>"
    if not hmac.compare_digest(credential.strip(), token.encode("utf-8")):
        return 401, "wrong bearer token"
    return None
