"""The admin server: liveness, readiness, Prometheus metrics, the run history and the status page.

Who sees what: `/healthz` and `/readyz` answer anyone with their status alone (for probes); their
details (which component is not ready, and why), `/api/*` and `/metrics` need `Authorization:
Bearer <token>` when a token is set. Without a token the server may only listen on loopback, unless
`allow_unauthenticated` says otherwise (see AdminConfig). Every answer passes through the redaction
of rtstream.secrets, and connections are limited as every rtstream HTTP server's are
(rtstream.http_limits).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rtstream.http_limits import Guard, HttpLimits, bearer_problem
from rtstream.logs import Redactor
from rtstream.secrets import Scrubber, remember

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


MAX_RUNS = 1000  # windows one /api/runs answer may hold


class AdminServer:
    def __init__(self, view: RuntimeStatus, listen: str, token: str | None, settings: Settings,
                 limits: HttpLimits | None = None):
        self.view = view
        self.listen = listen
        self.token = token
        admin = settings.root.admin
        self.limits = limits or (admin if admin is not None else HttpLimits(max_connections=64))
        # every answer is redacted with this config's secrets (and the token, were it not among them)
        self.scrubber = Scrubber([*remember(settings), *([token] if token else [])])
        self.samples: collections.deque[dict[str, float]] = collections.deque(maxlen=SAMPLES)
        self.errors = RecentErrors()
        self.errors.addFilter(Redactor(self.scrubber))  # the page never shows a secret either
        self.guard = Guard(self.limits, log, "admin")
        self._runner: web.AppRunner | None = None
        self._sampler: asyncio.Task[None] | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.guard.middleware, self._auth])
        app.router.add_get("/", self.page)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/api/runs", self.runs)
        app.router.add_get("/api/status", self.status)
        return app

    async def start(self) -> None:
        logging.getLogger().addHandler(self.errors)
        self._runner = self.guard.runner(self.app())
        await self._runner.setup()
        await self.guard.serve(self._runner, self.listen)
        self._sampler = asyncio.create_task(self._sample(), name="admin-sampler")
        log.info("admin server on http://%s (status page, /healthz, /readyz, /metrics, /api/runs)", self.listen)

    async def close(self) -> None:
        logging.getLogger().removeHandler(self.errors)
        if self._sampler is not None:
            self._sampler.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        self.guard.close()

    def _problem(self, request: web.Request) -> tuple[int, str] | None:
        """Why this request may not see details, or None when it may."""
        if not self.token:
            return None  # no token: loopback only, or allowed without one explicitly
        return bearer_problem(request, self.token)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        # probes and the page's shell stay open (probes then show no detail); the data needs the token
        if request.path.startswith(("/api/", "/metrics")):
            problem = self._problem(request)
            if problem is not None:
                self.guard.rejects.note(f"requests refused ({problem[0]})", f"{request.path}: {problem[1]}")
                return self._json({"error": problem[1]}, problem[0])
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
        return self._json({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        problems = self.view.readiness()
        doc: dict[str, Any] = {"ready": not problems}
        if problems and self._problem(request) is None:
            doc["problems"] = problems  # which component, and why: for those with the token
        return self._json(doc, 503 if problems else 200)

    async def metrics(self, request: web.Request) -> web.Response:
        body = self.scrubber.redact(generate_latest(self.view.metrics_registry).decode()).encode()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def runs(self, request: web.Request) -> web.Response:
        raw = request.query.get("limit", "0")
        if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or int(raw) > MAX_RUNS:
            return self._json({"error": f"limit must be a whole number from 0 to {MAX_RUNS} (0: the default)"}, 400)
        limit = int(raw) or None
        windows = await asyncio.to_thread(self.view.history.windows, limit)
        return self._json({"components": self.view.component_order(), "windows": windows})

    async def status(self, request: web.Request) -> web.Response:
        return self._json(self.view.status() | {"samples": list(self.samples), "errors": list(self.errors.items)[::-1]})

    async def page(self, request: web.Request) -> web.Response:
        html = resources.files("rtstream.admin").joinpath("page/index.html").read_text(encoding="utf-8")
        return web.Response(text=html, content_type="text/html", headers=_PAGE_HEADERS)

    def _json(self, doc: Any, status: int = 200) -> web.Response:
        body = orjson.dumps(self.scrubber.redact_doc(doc), default=lambda v: self.scrubber.redact(str(v)))
        return web.Response(body=body, status=status, content_type="application/json",
                            headers={"Cache-Control": "no-store"})


# the page runs only its own inline script and talks only to this server; no framing, no referrer
_PAGE_HEADERS = {"Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                 "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                 "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
