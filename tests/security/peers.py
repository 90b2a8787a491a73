"""What the security tests share: raw HTTP over loopback sockets, and receivers that record what
they were sent."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from typing import Any

import orjson
from aiohttp import web


def get(url: str, token: str | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], Any]:
    req = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, orjson.loads(resp.read() or b"{}"), resp.headers
    except urllib.error.HTTPError as err:
        return err.code, orjson.loads(err.read() or b"{}"), err.headers


def raw_request(port: int, data: bytes, timeout: float = 10) -> tuple[int, bytes]:
    """Send raw bytes, read the whole answer until the server closes; (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if _complete(b"".join(chunks)):
                break
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, body


def _complete(raw: bytes) -> bool:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


class Recorder:
    """An HTTP peer that answers every request with `status` (JSON `body`) and keeps what it got."""

    def __init__(self, status: int = 500, body: Any = None):
        self.status = status
        self.body = body
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self.lock:
            self.requests.append((str(request.rel_url), dict(request.headers), body))
        if self.body is not None:
            return web.json_response(self.body, status=self.status)
        return web.Response(status=self.status, text="receiver says no")
