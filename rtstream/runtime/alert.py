"""Alerts: a webhook told of each final failure and of each recovery (the seed's email_on_failure,
in a form a container can use: point it at a chat or mail relay)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from rtstream.support.secrets import Scrubber, redact_doc

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("rtstream.alert")


class AlertWebhook:
    def __init__(self, url: str, pipeline: str, token: str | None = None, timeout: float = 10.0):
        self.url = url
        self.pipeline = pipeline
        self.token = token
        self.timeout = timeout
        self.sent = 0
        self._own = Scrubber([token] if token else [])  # the process's known secrets are masked too
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        import aiohttp  # only a pipeline with an alert webhook loads the HTTP client

        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout), headers=headers)

    async def send(self, event: str, *, window: Any, component: str, error: str | None, attempts: int) -> None:
        """Never raises: an alert that cannot be delivered is logged, and the pipeline goes on."""
        await self.post({"event": event, "pipeline": self.pipeline, "component": component,
                         "window_start": window.start_iso, "window_end": window.end_iso, "error": error,
                         "attempts": attempts, "at": time.time()})

    async def post(self, doc: dict[str, Any]) -> None:
        """POST one alert document (a DAG run's too: rtstream.run.dag_alerts); never raises."""
        doc = self._own.redact_doc(redact_doc(doc))  # an error text may quote a URL with its password
        try:
            assert self._http is not None
            async with self._http.post(self.url, data=orjson.dumps(doc)) as resp:
                if resp.status >= 300:
                    log.warning("alert webhook answered HTTP %d", resp.status)
                else:
                    self.sent += 1
        except Exception as exc:  # noqa: BLE001 - alerting must not take the pipeline down
            log.warning("alert webhook failed: %s: %s", type(exc).__name__, exc)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
