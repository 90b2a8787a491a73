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
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtstream import early_signals
from rtstream.admin.history import RunHistory
from rtstream.admin.metrics import Metrics
from rtstream.config.load import Settings
from rtstream.core.alert import AlertWebhook
from rtstream.core.checkpoint import CheckpointStore
from rtstream.core.commit import Committer, CommitTracker
from rtstream.core.context import Context
from rtstream.core.deadletter import DeadLetterFile
from rtstream.core.engine import WindowEngine
from rtstream.core.flush import WindowFlusher, percentile
from rtstream.core.loops import PipelineLoops, guarded
from rtstream.core.partitions import PartitionLifecycle, checkpoint
from rtstream.core.policy import resolve
from rtstream.core.staging import RecordStaging
from rtstream.core.status import RuntimeStatus
from rtstream.errors import ComponentError, StateDirError
from rtstream.secrets import remember
from rtstream.sinks.base import Sink
from rtstream.sources.base import Source
from rtstream.stages.aggregate import AggregateStage
from rtstream.stages.base import Stage

log = logging.getLogger("rtstream.runtime")
CLOSE_TIMEOUT = 5.0  # a component that does not close in this long is left behind at shutdown


@dataclass
class RuntimeStats:
    records_in: dict[str, int] = field(default_factory=dict)


class Runtime:
    def __init__(self, settings: Settings):
        remember(settings)  # the run history, dead letters and alerts mask this config's secrets
        self.settings = settings
        root = settings.root
        self.state_dir = Path(root.daemon.state_dir)
        self.tracker = CommitTracker()
        self.context = Context(pipeline=root.pipeline.name, state_dir=self.state_dir, time_mode=root.window.time,
                               extra={"search_dirs": settings.search_dirs}, worker=root.daemon.worker)
        flow = settings.flow
        self.sources: list[Source] = [c.cls(c.name, c.config, self.context) for c in settings.of(flow.sources)]
        self.stages: list[Stage] = [c.cls(c.name, c.config, self.context) for c in settings.of(flow.stages)]
        stages = list(self.stages)
        self.record_stages = []
        while stages and stages[0].per_record:
            self.record_stages.append(stages.pop(0))
        self.incremental: AggregateStage | None = (
            stages.pop(0) if stages and isinstance(stages[0], AggregateStage) else None)  # type: ignore[assignment]
        self.window_stages = stages
        last_window_stage: Stage | None = self.window_stages[-1] if self.window_stages else self.incremental
        if isinstance(last_window_stage, AggregateStage) and last_window_stage.config.key:
            self.context.key_fields = [last_window_stage.config.key]
        elif isinstance(last_window_stage, AggregateStage) and root.window.type == "session":
            self.context.key_fields = ["key"]  # sessions of the record key: rows carry it as "key"
        self.sinks: list[Sink] = [c.cls(c.name, c.config, self.context) for c in settings.of(flow.sinks)]
        self.scopes = {s.name: s.checkpoint_scope() for s in self.sources}
        defaults = root.defaults
        policies = {c.name: resolve(defaults, c.config, "sink") for c in self.sinks}
        policies.update({c.name: resolve(defaults, c.config, "stage") for c in self.stages})
        # a per-record stage that awaits (a lookup) moves every per-record stage out of the fold
        source_where = {s.name: flt for s in self.sources if (flt := s.where) is not None}
        self.staging = RecordStaging(self.record_stages, policies, source_where) \
            if any(s.awaits_per_batch for s in self.record_stages) else None
        w = root.window
        self.engine = WindowEngine(
            size_ms=w.size_ms, lateness_ms=round(w.lateness * 1000), idle_timeout_s=w.idle_timeout,
            time_mode=w.time, time_field=w.time_field, record_stages=[] if self.staging else self.record_stages,  # type: ignore[arg-type]
            aggregator=self.incremental.aggregator if self.incremental else None, tracker=self.tracker,
            max_window_records=root.daemon.max_window_records, hop_ms=w.hop_ms, emit_empty=w.emit_empty,
            session_gap_ms=w.gap_ms, update_interval_s=w.update_interval if w.emit == "updates" else None,
            source_where={} if self.staging else source_where)  # staging filters before its stages
        # a sink that commits source offsets in its own transactions (Kafka exactly_once) does all commits
        self.committer = Committer(self.tracker, self.engine.ledger, self.sources,
                                   transactional=any(s.commits_source_offsets for s in self.sinks),
                                   owned=self.engine.owned)
        self.checkpoints: CheckpointStore | None = None
        if root.state.checkpoint_interval is not None:
            path = Path(root.state.path) if root.state.path else self.state_dir / "checkpoints.db"
            self.checkpoints = CheckpointStore(path, root.pipeline.name)
        self.partitions = PartitionLifecycle(self.engine, self.committer, self.checkpoints, self.scopes)
        self.context.partitions = self.partitions
        dl_path = Path(root.dead_letter.path) if root.dead_letter.path else self.state_dir / "dead_letters.jsonl"
        self.dead_letters = DeadLetterFile(dl_path)
        self.stats = RuntimeStats()
        self.metrics = Metrics()
        self.history = RunHistory(self.state_dir / "runs.db", root.admin.history if root.admin else 100)
        self.alert = None
        if root.alert is not None:
            token = root.alert.bearer_token.get_secret_value() if root.alert.bearer_token else None
            self.alert = AlertWebhook(root.alert.url, root.pipeline.name, token, root.alert.timeout)
        self.flusher = WindowFlusher(self.window_stages, self.sinks, self.dead_letters, self.engine.emitted, policies,
                                     history=self.history, metrics=self.metrics, alert=self.alert,
                                     first_stage=self.incremental.name if self.incremental else None,
                                     committer=self.committer)
        self.queues: dict[str, asyncio.Queue[Any]] = {}
        self.view = RuntimeStatus(self)
        self.admin = None
        if root.admin is not None:
            from rtstream.admin.server import AdminServer

            token = root.admin.token.get_secret_value() if root.admin.token else None
            self.admin = AdminServer(self.view, root.admin.listen, token, settings)
        self.stop_requested = asyncio.Event()
        self._stop_deadline: float | None = None  # monotonic time by which a requested stop must be done
        self._loops: PipelineLoops | None = None
        self._starting: asyncio.Task[Any] | None = None  # until the loops run: a stop cancels the start-up
        self._signals = 0
        self.exit_code = 0
        self.started = time.time()
        self.metrics.attach(self.view)

    @property
    def stopping(self) -> bool:
        return self.stop_requested.is_set()

    def time_left(self) -> float:
        """How long the next shutdown step may take: within the grace once a stop was requested."""
        if self._stop_deadline is None:
            return CLOSE_TIMEOUT
        return min(CLOSE_TIMEOUT, max(0.05, self._stop_deadline - time.monotonic()))

    # --- lifecycle --------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError):
                pass  # not the main thread (the Python API inside another loop): no signal handling
        if self.settings.path is not None:
            try:
                loop.add_signal_handler(signal.SIGHUP, self.reload)
            except (NotImplementedError, RuntimeError):
                pass
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._starting = starting = asyncio.current_task()
        if (early := early_signals.received()) is not None:  # a stop asked for before the loop listened
            self._on_signal(early)
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
            return 1

    async def _run_components(self) -> int:
        async with AsyncExitStack() as stack:
            stack.callback(self.history.close)
            if self.alert is not None:
                await self.alert.start()
                stack.push_async_callback(self._close, self.alert)
            if self.admin is not None:
                await guarded("admin", self.admin.start())
                stack.push_async_callback(self._close, self.admin)
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
            log.info("pipeline %s running: %s", self.settings.root.pipeline.name, self.settings.flow)
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
                await checkpoint(self.engine, self.checkpoints, self.scopes)
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
            log.info("windows written: %d; from the watermark letting a window go to every sink having it: "
                     "p50 %.3fs, p99 %.3fs, max %.3fs", self.flusher.windows_flushed, percentile(lat, 0.5),
                     percentile(lat, 0.99), max(lat))

    def stop(self) -> None:
        """Begin a clean shutdown: stop the sources, finish what is in flight."""
        if not self.stop_requested.is_set():
            self._stop_deadline = time.monotonic() + self.settings.root.daemon.shutdown_grace
            self.stop_requested.set()
            if self._loops is not None:
                self._loops.stop_sources()
            elif self._starting is not None:
                self._starting.cancel()

    def _on_signal(self, sig: int) -> None:
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
        from rtstream.errors import ConfigError

        try:
            new = load_settings(self.settings.path, self.settings.overrides)
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
