"""The supervisor: builds and starts every component, runs the loops, shuts down cleanly.

Start-up goes from the end of the flow backwards (sinks before sources), so nothing is produced into
a component not yet up; an AsyncExitStack closes what was opened, in reverse order. A stop (SIGTERM)
stops the sources, lets the windows in flight be written within `shutdown_grace`, commits what is
safe and exits 0; whatever is still unwritten then stays uncommitted and is rebuilt on restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any, Protocol

from rtstream.config.settings import Settings
from rtstream.model.errors import EXIT_START_REFUSED, ComponentError, StartRefused, StateDirError
from rtstream.model.policy import resolve
from rtstream.runtime.branch_build import build_any
from rtstream.runtime.build import PipelineParts
from rtstream.runtime.flush import percentile
from rtstream.runtime.loops import PipelineLoops, guarded
from rtstream.runtime.observers import WindowObserver
from rtstream.runtime.partitions import save_checkpoints
from rtstream.runtime.window_log import WindowLogRecorder
from rtstream.support import early_signals
from rtstream.support.secrets import remember

log = logging.getLogger("rtstream.runtime")
CLOSE_TIMEOUT = 5.0  # a component that does not close in this long is left behind at shutdown


class Service(Protocol):
    """A server beside the pipeline (the admin server): up before the components, down after them."""

    name: str

    async def start(self) -> None: ...
    async def close(self) -> None: ...


class Runtime(PipelineParts):
    """A built pipeline (rtstream.runtime.build) with its lifecycle: start, run the loops, stop cleanly."""

    def __init__(self, settings: Settings, observers: Sequence[WindowObserver] = ()):
        remember(settings)  # the run history, dead letters and alerts mask this config's secrets
        super().__init__(**vars(build_any(settings, observers)))  # the parts become this runtime's fields
        self.queues: dict[str, asyncio.Queue[Any]] = {}
        # started before every component and closed after them: the admin server (rtstream.run.daemon)
        self.services: list[Service] = []
        self.when_running: list[Callable[[], None]] = []  # called once every component has started
        self._stop_deadline: float | None = None  # monotonic time by which a requested stop must be done
        self._loops: PipelineLoops | None = None
        self._starting: asyncio.Task[Any] | None = None  # until the loops run: a stop cancels the start-up
        self._signals = 0
        # False in a daemon of several pipelines: its own handler stops them all (rtstream.run.pipeline_slot)
        self.handles_signals = True
        self.start_failure: str | None = None
        self.started = time.time()

    def time_left(self) -> float:
        """How long the next shutdown step may take: within the grace once a stop was requested."""
        if self._stop_deadline is None:
            return CLOSE_TIMEOUT
        return min(CLOSE_TIMEOUT, max(0.05, self._stop_deadline - time.monotonic()))

    # --- lifecycle --------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT) if self.handles_signals else ():
            try:
                loop.add_signal_handler(sig, self.on_signal, sig)
            except (NotImplementedError, RuntimeError):
                pass  # not the main thread (the Python API inside another loop): no signal handling
        if self.settings.path is not None and self.handles_signals:
            try:
                loop.add_signal_handler(signal.SIGHUP, self.reload)
            except (NotImplementedError, RuntimeError):
                pass
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._starting = starting = asyncio.current_task()
        if (early := early_signals.received()) is not None:  # a stop asked for before the loop listened
            self.on_signal(early)
        try:
            return await self._run_components()
        except asyncio.CancelledError:
            if starting is None or not self.stopping or self._loops is not None:
                raise
            # a component's start may wait without end (a static Kafka source for its topic): a stop ends it
            starting.uncancel()  # for a caller awaiting run() in its own task
            log.info("stopped before the pipeline started; what had started is closed again")
            return self.exit_code
        except ComponentError as exc:  # one did not start: what is up is closed again, nothing ran
            log.error("component %s failed to start: %s", exc.component, exc.message,
                      extra={"component": exc.component})
            self.start_failure = f"component {exc.component} failed to start: {exc.message}"  # for a status row
            return EXIT_START_REFUSED if isinstance(exc, StartRefused) else 1

    async def _run_components(self) -> int:
        async with AsyncExitStack() as stack:
            stack.callback(self.history.close)
            recorder = WindowLogRecorder(self.history)  # a window's log lines, kept across restarts
            logging.getLogger().addHandler(recorder)
            stack.callback(logging.getLogger().removeHandler, recorder)
            if self.alert is not None:
                await self.alert.start()
                stack.push_async_callback(self._close, self.alert)
            for service in self.services:
                stack.push_async_callback(self._close, service)  # a start cut short closes what it opened
                await guarded(service.name, service.start())
            if self.checkpoints is not None:
                self.checkpoints.open()
                stack.callback(self.checkpoints.close)
            components: list[Any] = [self.dead_letters, *self.sinks, *self.stages, *self.sources]
            for comp in components:
                # closed even when its start is cut short: a stop may land after it opened a client
                stack.push_async_callback(self._close, comp)
                await guarded(getattr(comp, "name", "dead_letter"), comp.start())
            for src in self.sources:
                self.partitions.start_fixed(src)
            if len(self.sources) > 1:  # one source's partitions commit together: it journals no marks
                await self.partitions.every_source_started()
            log.info("pipeline %s running: %s", self.settings.root.pipeline.name, self.settings.flow)
            for hook in self.when_running:
                hook()
            self._loops = PipelineLoops(self)
            self.queues = {"batches": self._loops.batches, "windows": self._loops.windows}
            await self._loops.run()
            self._log_latency()
            await self._final_commit()
        return self.exit_code

    async def _final_commit(self) -> None:
        """What is still open is checkpointed, so the next start reads on from here; what is safe is committed."""
        try:
            async with asyncio.timeout(self.time_left()):
                await save_checkpoints(self.engine, self.checkpoints, self.scopes)
                await self.committer.commit_all()
        except StateDirError as exc:
            log.error("final commit failed: %s", exc)
            self.exit_code = 1
        except TimeoutError:
            log.warning("the final checkpoint and commit did not finish within the shutdown grace; the next start "
                        "replays a little more")

    def _log_latency(self) -> None:
        lat = self.flusher.latencies
        if lat:
            n = self.flusher.windows_flushed
            log.info("%d window%s written; from a window's close to its last sink write: median %s, "
                     "99th percentile %s, slowest %s", n, "" if n == 1 else "s", _took(percentile(lat, 0.5)),
                     _took(percentile(lat, 0.99)), _took(max(lat)))

    def stop(self) -> None:
        """Begin a clean shutdown: stop the sources, finish what is in flight."""
        if not self.stop_requested.is_set():
            self._stop_deadline = time.monotonic() + self.settings.root.daemon.shutdown_grace
            self.stop_requested.set()
            if self._loops is not None:
                self._loops.stop_sources()
            elif self._starting is not None:
                self._starting.cancel()

    def on_signal(self, sig: int) -> None:
        """SIGTERM/SIGINT: begin a clean stop; a second one exits at once. Public for a daemon that wraps it
        (rtstream.run.dags_daemon stops its DAG scheduler on the same signal)."""
        self._signals += 1
        if self._signals > 1:
            log.warning("second %s: exiting at once", signal.Signals(sig).name)
            os._exit(130)
        log.info("%s: stopping sources, finishing in-flight windows (grace %.0fs)",
                 signal.Signals(sig).name, self.settings.root.daemon.shutdown_grace)
        self.stop()

    def reload(self) -> None:
        """SIGHUP: re-read the config; apply what can change live, refuse the rest and keep running."""
        from rtstream.config.load import load_settings, reload_changes
        from rtstream.model.errors import ConfigError

        try:
            new = load_settings(self.settings.path, self.settings.overrides, dag_bag=self.settings.dag_bag)
        except ConfigError as exc:
            log.error("reload refused, the config has problems; running on as before: %s", exc)
            return
        live, fixed = reload_changes(self.settings, new)
        if fixed:
            log.error("reload refused: %s cannot change while running (restart to apply); running on as before",
                      ", ".join(fixed))
            return
        if not live:
            log.info("reload: nothing changed")
            return
        for name, policy in self.flusher.policies.items():
            comp = new.components[name]
            fresh = resolve(new.root.defaults, comp.config, comp.kind)
            policy.retries, policy.retry_delay, policy.max_retry_delay, policy.timeout = (
                fresh.retries, fresh.retry_delay, fresh.max_retry_delay, fresh.timeout)
        logging.getLogger().setLevel(new.root.daemon.log_level.upper())
        self.settings = new
        log.warning("reload applied: %s", ", ".join(f"{k} = {v}" for k, v in live.items()))

    async def _close(self, comp: Any) -> None:
        try:
            async with asyncio.timeout(self.time_left()):
                await comp.close()
        except TimeoutError:
            log.warning("closing %s did not finish in time; left behind", getattr(comp, "name", comp))
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the daemon itself is being cancelled
            # a client library's own background task, cancelled inside its close (aiokafka's fetcher
            # when its broker is gone): the component is closed as far as it goes
            log.warning("closing %s was cut short", getattr(comp, "name", comp))
        except Exception as exc:  # noqa: BLE001 - one failed close must not skip the others
            log.warning("closing %s failed: %s", getattr(comp, "name", comp), exc)


def _took(seconds: float) -> str:
    """12ms, 1.5s: as a person would say a short span."""
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"
