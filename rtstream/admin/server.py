"""The admin server: liveness, readiness, Prometheus metrics, the run history and the status page.

Who sees what: `/healthz` and `/readyz` answer anyone with their status alone (for probes); their
details (which component is not ready, and why), `/api/*` and `/metrics` need `Authorization:
Bearer <token>` when a token is set. Without a token the server may only listen on loopback, unless
`allow_unauthenticated` says otherwise (see AdminConfig). Every answer passes through the redaction
of rtstream.support.secrets, and connections are limited as every rtstream HTTP server's are
(rtstream.connect.http_guard).
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
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from rtstream.admin.dag_metrics import DagCollector
from rtstream.admin.dags_api import DagRoutes
from rtstream.admin.rerun import RerunRefused, Reruns
from rtstream.admin.window_details import WindowLogs, dead_letters_of
from rtstream.connect.http_guard import Guard, HttpLimits, bearer_problem
from rtstream.model.window import iso_utc
from rtstream.support.logs import Redactor
from rtstream.support.secrets import Scrubber, remember
from rtstream.windows.clock import epoch_ms

if TYPE_CHECKING:
    from rtstream.config.settings import Settings
    from rtstream.model.dag_status import DagsView
    from rtstream.model.status import StatusView

log = logging.getLogger("rtstream.admin")
SAMPLE_EVERY = 2.0
SAMPLES = 150  # five minutes of throughput and lag for the page's charts
RATE_SPAN = 60.0  # the page's rates are averages over the last minute: windows flush in bursts


class RecentErrors(logging.Handler):
    """The last warnings and errors, for the status page."""

    def __init__(self, size: int = 20):
        super().__init__(level=logging.WARNING)
        self.items: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        self.items.append({"at": record.created, "level": record.levelname.lower(),
                           "component": getattr(record, "component", None), "message": record.getMessage(),
                           "pipeline": getattr(record, "pipeline_name", None)})  # in a daemon of several


MAX_RUNS = 1000  # windows one /api/runs answer may hold
DEFAULT_RUNS = 100  # without `limit`: a history may keep thousands of windows; `before` pages through them


class AdminServer:
    name = "admin"  # as the supervisor names it when it cannot start

    def __init__(self, view: StatusView | None, listen: str, token: str | None, settings: Settings | None,
                 limits: HttpLimits | None = None, dags: DagsView | None = None):
        # view: the pipeline's (None in a daemon that runs only DAGs); dags: the DAGs' (None without)
        self.view, self.dags = view, dags
        self.listen = listen
        self.token = token
        admin = settings.root.admin if settings is not None else None
        self.limits = limits or (admin if admin is not None else HttpLimits(max_connections=64))
        # every answer is redacted with this config's secrets (and the token, were it not among them)
        self.scrubber = Scrubber([*(remember(settings) if settings is not None else []), *([token] if token else [])])
        self.registry = view.metrics_registry if view is not None else CollectorRegistry(auto_describe=True)
        if dags is not None:
            self.registry.register(DagCollector(dags))
        self.samples: collections.deque[dict[str, float | None]] = collections.deque(maxlen=SAMPLES)
        self.errors = RecentErrors()
        self.errors.addFilter(Redactor(self.scrubber))  # the page never shows a secret either
        self.window_logs = WindowLogs()
        self.window_logs.addFilter(Redactor(self.scrubber))
        # a combined view of several workers (rtstream.run.workers_status) has no single runtime's
        # open windows, dead-letter file or config: those parts of the page are then empty
        self.reruns = Reruns(getattr(view, "config_path", None), list(getattr(view, "config_overrides", [])))
        self.guard = Guard(self.limits, log, "admin")
        # a worker's, polled by the workers supervisor
        self.internal = settings is not None and settings.root.daemon.worker.count > 1
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
        app.router.add_get("/api/window", self.window)
        app.router.add_post("/api/rerun", self.rerun)
        if self.dags is not None:
            DagRoutes(self.dags, self._json, self.token).add_to(app)
        return app

    async def start(self) -> None:
        logging.getLogger().addHandler(self.errors)
        logging.getLogger().addHandler(self.window_logs)
        self._runner = self.guard.runner(self.app())
        await self._runner.setup()
        await self.guard.serve(self._runner, self.listen)
        if self.view is not None:
            self._sampler = asyncio.create_task(self._sample(), name="admin-sampler")
        if self.internal:  # read by the supervisor only; its own admin server is the one announced
            log.debug("worker status server on http://%s, for the supervisor", self.listen)
        else:
            log.info("admin server on http://%s (status page, /healthz, /readyz, /metrics, /api/runs)", self.listen)

    async def close(self) -> None:
        logging.getLogger().removeHandler(self.errors)
        logging.getLogger().removeHandler(self.window_logs)
        if self._sampler is not None:
            self._sampler.cancel()
        await self.reruns.close()
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
        """Every SAMPLE_EVERY seconds: the counters' totals, and the per-second rates since the last sample."""
        assert self.view is not None  # started only for a pipeline
        seen = self.view.throughput()
        last_in, last_out, last_t = seen.records_in, seen.rows_out, time.monotonic()
        last_running = seen.rows_running
        # the first point: a burst written before the first sample still counts in the rates
        self.samples.append({"t": time.time(), "records_in": last_in, "rows_out": last_out, "in_per_s": None,
                             "out_per_s": None, "running_per_s": None, "lag_s": None})
        while True:
            await asyncio.sleep(SAMPLE_EVERY)
            now = time.monotonic()
            seen = self.view.throughput()
            rin, rout, wm, running = seen.records_in, seen.rows_out, seen.watermark_ms, seen.rows_running
            # rows_out counts final rows only; running results (emit = "updates") are their own series
            self.samples.append({"t": time.time(), "records_in": rin, "rows_out": rout,
                                 "in_per_s": (rin - last_in) / (now - last_t),
                                 "out_per_s": (rout - last_out) / (now - last_t),
                                 "running_per_s": (running - last_running) / (now - last_t),
                                 "lag_s": max(0.0, time.time() - wm / 1000) if wm > 0 else None})
            last_in, last_out, last_running, last_t = rin, rout, running, now

    def rates(self) -> dict[str, float | None]:
        """Records in and rows out per second over the last RATE_SPAN (or since the first sample):
        rows leave in a burst when a window closes, so one sample's rate is mostly 0."""
        if len(self.samples) < 2:
            return {"in_per_s": None, "out_per_s": None, "span_s": None}
        points = [(x["t"] or 0.0, x["records_in"] or 0.0, x["rows_out"] or 0.0) for x in self.samples]
        t1, in1, out1 = points[-1]
        t0, in0, out0 = next(p for p in points if t1 - p[0] <= RATE_SPAN)
        span = t1 - t0
        if span <= 0:
            return {"in_per_s": None, "out_per_s": None, "span_s": None}
        return {"in_per_s": (in1 - in0) / span, "out_per_s": (out1 - out0) / span, "span_s": span}

    # --- handlers -------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return self._json({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        problems = self.view.readiness() if self.view is not None else {}
        doc: dict[str, Any] = {"ready": not problems}
        if problems and self._problem(request) is None:
            doc["problems"] = problems  # which component, and why: for those with the token
        return self._json(doc, 503 if problems else 200)

    async def metrics(self, request: web.Request) -> web.Response:
        body = self.scrubber.redact(generate_latest(self.registry).decode()).encode()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def runs(self, request: web.Request) -> web.Response:
        """The newest `limit` windows (DEFAULT_RUNS), or those before `before`: page on with `next_before`."""
        if self.view is None:
            return self._json({"error": "this daemon runs no pipeline (only DAGs: see /api/dags)"}, 404)
        raw = request.query.get("limit", "0")
        if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or int(raw) > MAX_RUNS:
            return self._json({"error": f"limit must be a whole number from 0 to {MAX_RUNS} "
                                        f"(0: the default, {DEFAULT_RUNS})"}, 400)
        limit = int(raw) or DEFAULT_RUNS
        before = None
        if "before" in request.query:
            before = _window_start(request.query["before"])
            if before is None:
                return self._json({"error": "before must be a window start, e.g. 2026-11-24T12:05:00Z"}, 400)
        windows = await asyncio.to_thread(self.view.history.windows, limit, before)
        more = len(windows) == limit
        return self._json({"components": self.view.component_order(), "windows": windows,
                           "next_before": windows[-1]["window_start"] if more else None})

    async def status(self, request: web.Request) -> web.Response:
        if self.view is None:  # DAGs only: the page shows their grid and the last errors
            return self._json({"pipeline": None, "ready": True, "dags": True, "errors": list(self.errors.items)[::-1]})
        return self._json(self.view.status() | {
            "samples": list(self.samples), "rates": self.rates(), "errors": list(self.errors.items)[::-1],
            "open": self._open_windows(), "reruns": list(self.reruns.runs.values())[::-1],
            "can_rerun": bool(self.token) and self.reruns.config_path is not None, "rerun_refusal": self.reruns.refusal(bool(self.token))})

    def _open_windows(self) -> list[dict[str, Any]]:
        opened = getattr(self.view, "open_window_runs", None)
        return opened() if opened is not None else []

    async def window(self, request: web.Request) -> web.Response:
        """One window: each component's run, the log lines that named it, its dead letters, its re-run."""
        start = _window_start(request.query.get("start", ""))
        if self.view is None:
            return self._json({"error": "this daemon runs no pipeline (only DAGs: see /api/dags)"}, 404)
        if start is None:
            return self._json({"error": "start must be a window start, e.g. 2026-11-24T12:05:00Z"}, 400)
        run = await asyncio.to_thread(self.view.history.window, start)  # any window the history keeps
        opened = next((w for w in self._open_windows() if w["window_start"] == start), None)
        path = getattr(self.view, "dead_letter_path", None)
        letters = await asyncio.to_thread(dead_letters_of, path, start) if path else []
        return self._json({"window_start": start, "window_end": (run or opened or {}).get("window_end"),
                           "open": opened is not None, "records": opened["records"] if opened else None,
                           "components": run["components"] if run else {}, "logs": await self._window_log(start),
                           "dead_letters": letters, "rerun": self.reruns.runs.get(start), "dag_runs": (run or {}).get("dag_runs", [])})

    async def _window_log(self, start: str) -> list[dict[str, Any]]:
        # kept by the runtime in the run history (they survive a restart); a view of workers has none
        kept = getattr(self.view.history if self.view is not None else None, "logs", None)
        return await asyncio.to_thread(kept, start) if kept is not None else self.window_logs.of(start)

    async def rerun(self, request: web.Request) -> web.Response:
        """POST {"window_start": ...}: a backfill of that window. Needs the admin token even on loopback."""
        if not self.token:
            return self._json({"error": "re-running a window needs admin.token to be set"}, 403)
        try:
            doc = await request.json(loads=orjson.loads)
        except (ValueError, orjson.JSONDecodeError):
            return self._json({"error": 'the body must be JSON: {"window_start": "..."}'}, 400)
        start = _window_start(doc.get("window_start", "") if isinstance(doc, dict) else "")
        if self.view is None:
            return self._json({"error": "this daemon runs no pipeline: clear a DAG's task instances instead"}, 404)
        if start is None:
            return self._json({"error": "window_start must be a window start, e.g. 2026-11-24T12:05:00Z"}, 400)
        run = await asyncio.to_thread(self.view.history.window, start)
        if run is None:
            return self._json({"error": f"no closed window starts at {start}"}, 404)
        try:
            return self._json({"rerun": self.reruns.start(start, run["window_end"])}, 202)
        except RerunRefused as exc:
            return self._json({"error": str(exc)}, exc.status)

    async def page(self, request: web.Request) -> web.Response:
        page = resources.files("rtstream.admin").joinpath("page")
        html = page.joinpath("index.html").read_text(encoding="utf-8")
        if self.dags is not None:  # the DAGs' grid: its section first in the page, its script after the page's
            grid = page.joinpath("dags.html").read_text(encoding="utf-8")
            sections, script = grid.split("<!-- script -->")
            html = html.replace("<main>", "<main>" + sections, 1).replace("</body>", script + "</body>", 1)
        return web.Response(text=html, content_type="text/html", headers=_PAGE_HEADERS)

    def _json(self, doc: Any, status: int = 200) -> web.Response:
        body = orjson.dumps(self.scrubber.redact_doc(doc), default=lambda v: self.scrubber.redact(str(v)))
        return web.Response(body=body, status=status, content_type="application/json",
                            headers={"Cache-Control": "no-store"})


def _window_start(text: Any) -> str | None:
    """The window start `text` names, spelled as the history spells it, or None."""
    if not isinstance(text, str) or not 0 < len(text) <= 40:
        return None
    try:
        return iso_utc(epoch_ms(text))
    except Exception:  # noqa: BLE001 - anything unreadable is a 400
        return None


# the page runs only its own inline script and talks only to this server; no framing, no referrer
_PAGE_HEADERS = {"Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                 "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                 "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
