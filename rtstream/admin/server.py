"""The admin server: liveness, readiness, Prometheus metrics, the run history and the status page."""

from __future__ import annotations

import asyncio
import collections
import hmac
import logging
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rtstream.logs import Redactor, secrets_of

if TYPE_CHECKING:
    from rtstream.config.load import Settings
    from rtstream.core.status import RuntimeStatus

log = logging.getLogger("rtstream.admin")
SAMPLE_EVERY = 2.0
SAMPLES = 150  # five minutes of throughput and lag for the page's charts


class RecentErrors(logging.Handler):
    """The last warnings and errors, for the status page."""

    def __init__(self, size: int = 20):
        super().__init__(level=logging.WARNING)
        self.items: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        self.items.append({"at": record.created, "level": record.levelname.lower(),
                           "component": getattr(record, "component", None), "message": record.getMessage()})


class AdminServer:
    def __init__(self, view: RuntimeStatus, listen: str, token: str | None, settings: Settings):
        self.view = view
        self.listen = listen
        self.token = token
        self.samples: collections.deque[dict[str, float]] = collections.deque(maxlen=SAMPLES)
        self.errors = RecentErrors()
        self.errors.addFilter(Redactor(secrets_of(settings)))  # the page never shows a secret either
        self._runner: web.AppRunner | None = None
        self._sampler: asyncio.Task[None] | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/", self.page)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/api/runs", self.runs)
        app.router.add_get("/api/status", self.status)
        return app

    async def start(self) -> None:
        logging.getLogger().addHandler(self.errors)
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        host, _, port = self.listen.rpartition(":")
        await web.TCPSite(self._runner, host.strip("[]"), int(port)).start()
        self._sampler = asyncio.create_task(self._sample(), name="admin-sampler")
        log.info("admin server on http://%s (status page, /healthz, /readyz, /metrics, /api/runs)", self.listen)

    async def close(self) -> None:
        logging.getLogger().removeHandler(self.errors)
        if self._sampler is not None:
            self._sampler.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        # probes and the page's shell stay open; the data behind them needs the token
        if self.token and request.path.startswith(("/api/", "/metrics")):
            given = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return _json({"error": "missing or wrong bearer token"}, 401)
        return await handler(request)  # type: ignore[no-any-return]

    async def _sample(self) -> None:
        last_in = last_out = 0
        last_t = time.monotonic()
        while True:
            await asyncio.sleep(SAMPLE_EVERY)
            now = time.monotonic()
            seen = self.view.throughput()
            rin, rout, wm = seen.records_in, seen.rows_out, seen.watermark_ms
            self.samples.append({"t": time.time(), "in_per_s": (rin - last_in) / (now - last_t),
                                 "out_per_s": (rout - last_out) / (now - last_t),
                                 "lag_s": max(0.0, time.time() - wm / 1000) if wm > 0 else None})  # type: ignore[dict-item]
            last_in, last_out, last_t = rin, rout, now

    # --- handlers -------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        problems = self.view.readiness()
        if problems:
            return _json({"ready": False, "problems": problems}, 503)
        return _json({"ready": True})

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.view.metrics_registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def runs(self, request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", "0")) or None
        windows = await asyncio.to_thread(self.view.history.windows, limit)
        return _json({"components": self.view.component_order(), "windows": windows})

    async def status(self, request: web.Request) -> web.Response:
        return _json(self.view.status() | {"samples": list(self.samples), "errors": list(self.errors.items)[::-1]})

    async def page(self, request: web.Request) -> web.Response:
        html = resources.files("rtstream.admin").joinpath("page/index.html").read_text(encoding="utf-8")
        return web.Response(text=html, content_type="text/html")


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(doc, default=str), status=status, content_type="application/json")
