"""One pipeline of a daemon that runs several: its runtime, its metrics, and its restarts.

A pipeline whose runtime ends on its own with a failure (a component that cannot start, a state dir
that filled up) is built again after a capped backoff, on its own: the other pipelines and the DAGs
never see it. A pipeline whose finite sources ended (exit 0) is finished and stays so. A stop
(SIGTERM) stops the runtime as `rtstream run` does, within the shared grace.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from rtstream.admin.metrics import Metrics
from rtstream.config.settings import Settings
from rtstream.model.errors import StateDirError
from rtstream.runtime.run_history import RunHistory
from rtstream.runtime.status import RuntimeStatus
from rtstream.runtime.supervisor import Runtime

log = logging.getLogger("rtstream.pipelines")
FIRST_BACKOFF, MAX_BACKOFF = 1.0, 60.0


class PipelineSlot:
    def __init__(self, name: str, settings: Settings, dags: Any = None):
        self.name, self.settings = name, settings
        self.dags = dags  # the daemon's DagTrigger (rtstream.dags.window_runs), for its `dag` sinks
        self.runtime: Runtime | None = None
        self.view: RuntimeStatus | None = None
        self.metrics = Metrics()
        self.state = "starting"  # starting, running, restarting, finished, stopped
        self.last_error: str | None = None
        self.restarts = 0
        self.exit_code = 0
        self._stop = asyncio.Event()
        self._reopened: RunHistory | None = None

    def stop(self) -> None:
        self._stop.set()
        if self.runtime is not None:
            self.runtime.stop()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _build(self) -> Runtime:
        self.metrics = Metrics()  # a fresh registry per runtime: a rebuilt one is collected once
        runtime = Runtime(self.settings, observers=[self.metrics])
        runtime.handles_signals = False  # the daemon's handler stops every pipeline and the DAGs
        runtime.context.dags = self.dags
        self.view = RuntimeStatus(runtime, self.metrics.registry)
        self.metrics.attach(self.view)
        return runtime

    async def run(self) -> int:
        """Until stopped or finished; the pipeline's exit code (0 after a clean stop)."""
        delay = FIRST_BACKOFF
        while not self.stopping:
            try:
                self.runtime = self._build()
            except (OSError, StateDirError) as exc:  # the state dir went away or filled up since the load
                code, why = 1, f"cannot start: {getattr(exc, 'filename', None) or ''} {getattr(exc, 'strerror', None) or exc}"
            else:
                self.state = "running"
                started = time.monotonic()
                try:
                    code = await self.runtime.run()
                except Exception as exc:  # noqa: BLE001 - one pipeline's failure must not end the others
                    log.exception("pipeline %s failed", self.name)
                    code = 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                self._keep_history_readable()
                if self.stopping:
                    self.state, self.exit_code = "stopped", code
                    return code
                if code == 0:
                    self.state = "finished"  # its finite sources ended and everything was written
                    log.info("pipeline %s finished: its input ended", self.name)
                    return 0
                why = (self.runtime.start_failure or self._last_problem() or self.last_error
                       or f"it stopped with exit code {code}")
                if time.monotonic() - started > MAX_BACKOFF:
                    delay = FIRST_BACKOFF  # it ran a good while: not a crash loop
            self.state, self.last_error = "restarting", why.strip()
            self.restarts += 1
            log.error("pipeline %s stopped (%s); starting it again in %.0fs, the other pipelines run on",
                      self.name, self.last_error, delay)
            try:
                await asyncio.wait_for(self._stop.wait(), delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, MAX_BACKOFF)
        self.state = "stopped"
        return 0

    def _keep_history_readable(self) -> None:
        """A runtime closes its run history as it ends: the admin server still shows a finished or
        restarting pipeline's windows, so they are read from a history opened again."""
        rt = self.runtime
        if rt is not None:
            self.close()  # the previous runtime's, reopened: one open at a time however often it restarts
            rt.history = RunHistory(rt.state_dir / "runs.db", rt.history.keep)  # as runtime.build opens it
            self._reopened = rt.history

    def close(self) -> None:
        if self._reopened is not None:
            self._reopened.close()
            self._reopened = None

    def _last_problem(self) -> str | None:
        rt = self.runtime
        if rt is None:
            return None
        failing = getattr(rt.flusher, "failing", {})
        return "; ".join(f"{k}: {v}" for k, v in failing.items()) or None

    def row(self) -> dict[str, Any]:
        """The pipeline's line of /api/status: name, state, windows, lag, last error."""
        doc: dict[str, Any] = {"name": self.name, "state": self.state, "restarts": self.restarts,
                               "last_error": self.last_error, "flow": str(self.settings.flow)}
        view = self.view
        if view is None or self.runtime is None:
            return doc | {"ready": False, "windows_flushed": 0, "open_windows": 0, "lag_s": None, "problems": {}}
        st = view.status()
        wm = self.runtime.engine.watermark.current
        lag = {f"{name}:{topic}:{part}": n for name, lags, _ in view.source_gauges() for (topic, part), n in lags.items()}
        failing = self.runtime.flusher.failing
        if failing:
            doc["last_error"] = "; ".join(f"{k}: halted, retrying: {v}" for k, v in failing.items())
        if failing and self.state == "running":
            doc["state"] = "halted"
        return doc | {"ready": st["ready"], "problems": st["problems"], "windows_flushed": st["windows_flushed"],
                      "open_windows": st["open_windows"], "records_in": st["records_in"], "rows_out": st["rows_out"],
                      "dead_letters": st["dead_letters"], "watermark": st["watermark"],
                      "lag_s": max(0.0, time.time() - wm / 1000) if wm > 0 else None, "consumer_lag": lag}
