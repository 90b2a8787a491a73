"""The supervisor: starts every component, runs the loops under one TaskGroup, shuts down cleanly.

sources --(bounded queue of batches)--> windows --(bounded queue of closed windows)--> stages, sinks
A slow sink fills the second queue, which stalls the window loop, which fills the first queue, which
stalls the sources: memory stays bounded and Kafka simply fetches later.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Coroutine, Hashable
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtstream.admin.history import RunHistory
from rtstream.admin.metrics import Metrics
from rtstream.config.load import Settings
from rtstream.core.alert import AlertWebhook
from rtstream.core.checkpoint import CheckpointStore
from rtstream.core.commit import CommitTracker, Mark, PartitionKey
from rtstream.core.context import Context
from rtstream.core.deadletter import DeadLetterFile
from rtstream.core.engine import Emission, WindowEngine
from rtstream.core.flush import WindowFlusher, percentile
from rtstream.core.policy import resolve
from rtstream.core.record import iso_utc
from rtstream.errors import ComponentError
from rtstream.sinks.base import Sink
from rtstream.sources.base import Source
from rtstream.sources.positions import StateDirError
from rtstream.stages.aggregate import AggregateStage
from rtstream.stages.base import Stage

log = logging.getLogger("rtstream.runtime")
TICK = 0.2  # how often idle windows are checked against the wall clock
KEEPALIVE = 1.0  # how often a source blocked by a full queue is asked to stay alive


@dataclass(slots=True)
class _SourceDone:
    source: str


@dataclass
class RuntimeStats:
    records_in: dict[str, int] = field(default_factory=dict)


class Runtime:
    def __init__(self, settings: Settings):
        self.settings = settings
        root = settings.root
        self.state_dir = Path(root.daemon.state_dir)
        self.tracker = CommitTracker()
        self.context = Context(pipeline=root.pipeline.name, state_dir=self.state_dir, time_mode=root.window.time,
                               on_assign=self._assigned, on_revoke=self._revoked,
                               extra={"search_dirs": settings.search_dirs})
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
        self._scopes = {s.name: s.checkpoint_scope() for s in self.sources}
        # a sink that commits source offsets in its own transactions (Kafka exactly_once) does all commits
        self.transactional_commits = any(getattr(s.config, "exactly_once", False) for s in self.sinks)
        self.context.offsets_after = self._offsets_after
        self.context.offsets_committed = self._offsets_committed
        # windows are written one at a time: the one transaction under way, and what it commits
        self._in_transaction: tuple[Any, dict[PartitionKey, int], dict[PartitionKey, Mark]] | None = None
        w = root.window
        self.engine = WindowEngine(
            size_ms=w.size_ms, lateness_ms=round(w.lateness * 1000), idle_timeout_s=w.idle_timeout,
            time_mode=w.time, time_field=w.time_field, record_stages=self.record_stages,  # type: ignore[arg-type]
            aggregator=self.incremental.aggregator if self.incremental else None, tracker=self.tracker,
            max_window_records=root.daemon.max_window_records, hop_ms=w.hop_ms, emit_empty=w.emit_empty,
            session_gap_ms=w.gap_ms, update_interval_s=w.update_interval if w.emit == "updates" else None)
        dl_path = Path(root.dead_letter.path) if root.dead_letter.path else self.state_dir / "dead_letters.jsonl"
        self.dead_letters = DeadLetterFile(dl_path)
        self.stats = RuntimeStats()
        self.metrics = Metrics()
        self.history = RunHistory(self.state_dir / "runs.db", root.admin.history if root.admin else 100)
        self.checkpoints: CheckpointStore | None = None
        if root.state.checkpoint_interval is not None:
            path = Path(root.state.path) if root.state.path else self.state_dir / "checkpoints.db"
            self.checkpoints = CheckpointStore(path, root.pipeline.name)
        defaults = root.defaults
        policies = {c.name: resolve(defaults, c.config, "sink") for c in self.sinks}
        policies.update({c.name: resolve(defaults, c.config, "stage") for c in self.stages})
        self.alert = None
        if root.alert is not None:
            token = root.alert.bearer_token.get_secret_value() if root.alert.bearer_token else None
            self.alert = AlertWebhook(root.alert.url, root.pipeline.name, token, root.alert.timeout)
        self.flusher = WindowFlusher(self.window_stages, self.sinks, self.dead_letters, self.engine.emitted, policies,
                                     history=self.history, metrics=self.metrics, alert=self.alert,
                                     first_stage=self.incremental.name if self.incremental else None)
        self.queues: dict[str, asyncio.Queue[Any]] = {}
        self.admin = None
        if root.admin is not None:
            from rtstream.admin.server import AdminServer

            token = root.admin.token.get_secret_value() if root.admin.token else None
            self.admin = AdminServer(self, root.admin.listen, token)
        self._stop = asyncio.Event()
        self._drained = asyncio.Event()  # every closed window is written (or the flusher gave up)
        self._signals = 0
        self._pumps: dict[str, asyncio.Task[None]] = {}
        self.exit_code = 0
        self.started = time.time()
        self.metrics.attach(self)

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
        try:
            return await self._run_components()
        except ComponentError as exc:  # one did not start: what is up is closed again, nothing ran
            log.error("component %s failed to start: %s", exc.component, exc.message,
                      extra={"component": exc.component})
            return 1

    async def _run_components(self) -> int:
        loop = asyncio.get_running_loop()
        async with AsyncExitStack() as stack:
            # Start from the end of the flow backwards, so nothing is produced into a component not yet up.
            stack.callback(self.history.close)
            if self.alert is not None:
                await self.alert.start()
                stack.push_async_callback(self._close, self.alert)
            if self.admin is not None:
                await self._guarded("admin", self.admin.start())
                stack.push_async_callback(self._close, self.admin)
            if self.checkpoints is not None:
                self.checkpoints.open()
                stack.callback(self.checkpoints.close)
            components: list[Any] = [self.dead_letters, *self.sinks, *self.stages, *self.sources]
            for comp in components:
                await self._guarded(getattr(comp, "name", "dead_letter"), comp.start())
                stack.push_async_callback(self._close, comp)
            now = loop.time()
            for src in self.sources:
                for p in src.partitions() or []:
                    self.engine.assign((src.name, p), now)
                for p, mark in src.resume_marks().items():
                    self.engine.seed((src.name, p), mark)
                fixed = src.partitions()
                if fixed:
                    self._restore(src.name, fixed, src.resume_at)
            log.info("pipeline %s running: %s", self.settings.root.pipeline.name, self.settings.flow)
            await self._run_loops()
            lat = self.flusher.latencies
            if lat:
                log.info("windows written: %d; from the watermark letting a window go to every sink having it: "
                         "p50 %.3fs, p99 %.3fs, max %.3fs", self.flusher.windows_flushed, percentile(lat, 0.5),
                         percentile(lat, 0.99), max(lat))
            try:
                await self._checkpoint()  # what is still open, so the next start reads on from here
                await self._commit_all()
            except StateDirError as exc:
                log.error("final commit failed: %s", exc)
                self.exit_code = 1
        return self.exit_code

    def stop(self) -> None:
        """Begin a clean shutdown: stop the sources, finish what is in flight."""
        if not self._stop.is_set():
            self._stop.set()
            for task in self._pumps.values():
                task.cancel()

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

    async def _run_loops(self) -> None:
        d = self.settings.root.daemon
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=d.queue_size)
        flushq: asyncio.Queue[Emission | None] = asyncio.Queue(maxsize=d.flush_queue_size)
        self.queues = {"batches": queue, "windows": flushq}
        try:
            async with asyncio.TaskGroup() as tg:
                for src in self.sources:
                    self._pumps[src.name] = tg.create_task(self._guarded(src.name, self._pump(src, queue)))
                if self._stop.is_set():
                    self.stop()
                tg.create_task(self._guarded("windows", self._window_loop(queue, flushq)))
                flushing = tg.create_task(self._guarded("flush", self._flush_loop(flushq)))
                tg.create_task(self._guarded("commit", self._commit_loop(flushing)))
                tg.create_task(self._grace_watch(flushing))
        except* ComponentError as group:
            self.exit_code = 1
            for exc in group.exceptions:
                log.error("component %s failed: %s", getattr(exc, "component", "?"), exc.__cause__ or exc,
                          exc_info=exc.__cause__, extra={"component": getattr(exc, "component", None)})

    async def _guarded(self, name: str, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            return await coro
        except ComponentError:
            raise
        except Exception as exc:  # noqa: BLE001 - name the component that died, then stop everything
            raise ComponentError(name, f"{type(exc).__name__}: {exc}") from exc

    async def _close(self, comp: Any) -> None:
        try:
            await comp.close()
        except Exception as exc:  # noqa: BLE001 - one failed close must not skip the others
            log.warning("closing %s failed: %s", getattr(comp, "name", comp), exc)

    # --- the loops --------------------------------------------------------------------------
    async def _pump(self, src: Source, queue: asyncio.Queue[Any]) -> None:
        async with aclosing(src.batches()) as batches:  # type: ignore[type-var]
            async for batch in batches:
                if queue.full():
                    await self._put_waiting(src, queue, batch)
                else:
                    queue.put_nowait(batch)
        await queue.put(_SourceDone(src.name))
        # A finished source may still belong to a group whose commits are pending: keep it alive
        # until the last window is written.
        while not self._drained.is_set():
            try:
                await asyncio.wait_for(self._drained.wait(), KEEPALIVE)
            except TimeoutError:
                await src.keepalive()

    async def _put_waiting(self, src: Source, queue: asyncio.Queue[Any], batch: Any) -> None:
        """Backpressure: wait for room in the queue, keeping the source alive meanwhile."""
        put = asyncio.ensure_future(queue.put(batch))
        try:
            while not (await asyncio.wait({put}, timeout=KEEPALIVE))[0]:
                await src.keepalive()
        finally:
            put.cancel()  # a no-op once it is done; on cancellation, the batch is simply not queued

    async def _window_loop(self, queue: asyncio.Queue[Any], flushq: asyncio.Queue[Emission | None]) -> None:
        loop = asyncio.get_running_loop()
        engine = self.engine
        live = {s.name for s in self.sources}
        records_in = self.stats.records_in
        interval = self.settings.root.state.checkpoint_interval
        next_checkpoint = loop.time() + (interval or 0)
        while not self._stop.is_set():
            for em in engine.take_restored():
                await flushq.put(em)
            if interval is not None and loop.time() >= next_checkpoint:
                await self._checkpoint()
                next_checkpoint = loop.time() + interval
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                try:
                    item = await asyncio.wait_for(queue.get(), TICK)
                except TimeoutError:
                    item = None
            if isinstance(item, _SourceDone):
                live.discard(item.source)
                for pk in engine.partitions(item.source):
                    engine.finish(pk)
            elif item is not None and engine.owns(item):
                records_in[item.source] = records_in.get(item.source, 0) + len(item.records)
                dead = engine.process(item, loop.time())
                if dead:
                    await self.dead_letters.write(dead)
                if engine.owns(item):  # a rebalance may have taken the partition meanwhile
                    self.tracker.processed((item.source, item.partition), item.end)
            if not live:
                for em in engine.close_all():
                    await flushq.put(em)
                log.info("all sources finished: %d records read", engine.records_in)
                break
            for em in engine.close_ready(loop.time(), int(time.time() * 1000), queue.empty()):
                await flushq.put(em)
        await flushq.put(None)

    async def _flush_loop(self, flushq: asyncio.Queue[Emission | None]) -> None:
        try:
            while (em := await flushq.get()) is not None:
                await self.flusher.flush(em)
        finally:
            self._drained.set()

    async def _commit_loop(self, flushing: asyncio.Task[Any]) -> None:
        interval = self.settings.root.daemon.commit_interval
        while not flushing.done():
            await asyncio.wait({flushing}, timeout=interval)
            await self._commit_all()

    async def _grace_watch(self, flushing: asyncio.Task[Any]) -> None:
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({stopping, flushing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if flushing.done():
            return
        grace = self.settings.root.daemon.shutdown_grace
        await asyncio.wait({flushing}, timeout=grace)
        if not flushing.done():
            log.warning("shutdown grace of %.0fs is over with windows still unwritten; they stay uncommitted "
                        "and are rebuilt on restart", grace)
            flushing.cancel()

    # --- what operators see ------------------------------------------------------------------
    def readiness(self) -> dict[str, str]:
        """Component -> why it is not ready; empty when every source takes input and no sink is halted."""
        problems = {}
        for src in self.sources:
            why = src.not_ready()
            if why:
                problems[src.name] = why
        for comp, error in self.flusher.failing.items():
            problems[comp] = f"halted, retrying: {error}"
        if self._stop.is_set():
            problems["daemon"] = "shutting down"
        return problems

    def component_order(self) -> list[str]:
        return [*([self.incremental.name] if self.incremental else []), *(s.name for s in self.window_stages),
                *(s.name for s in self.sinks)]

    def status(self) -> dict[str, Any]:
        flow = self.settings.flow
        comps: dict[str, Any] = {}
        for kind, objs in (("source", self.sources), ("stage", self.stages), ("sink", self.sinks)):
            for obj in objs:
                comps[obj.name] = {"kind": kind, "describe": obj.describe(),
                                   "halted": obj.name in self.flusher.failing}
        wm = self.engine.watermark.current
        problems = self.readiness()
        return {"pipeline": self.settings.root.pipeline.name, "ready": not problems, "problems": problems,
                "flow": {"sources": flow.sources, "stages": flow.stages, "sinks": flow.sinks},
                "components": comps, "uptime_s": time.time() - self.started,
                "records_in": sum(self.stats.records_in.values()), "rows_out": self.flusher.rows_out,
                "windows_flushed": self.flusher.windows_flushed, "dead_letters": self.dead_letters.count,
                "open_windows": self.engine.open_windows(),
                "watermark": iso_utc(wm) if wm > 0 else None}

    # --- commits and partitions -------------------------------------------------------------
    def _marks(self, source: str, positions: dict[Hashable, int]) -> dict[Hashable, Mark]:
        out = {}
        for p in positions:
            mark = self.engine.commit_mark((source, p))
            if mark is not None:
                out[p] = mark
        return out

    def _offsets_after(self, window: Any) -> dict[str, dict[Any, tuple[int, str]]]:
        positions, marks = self.engine.commit_after(window)
        self._in_transaction = (window, positions, marks)
        out = {}
        for src in self.sources:
            group = getattr(src.config, "group_id", None)
            offsets = getattr(src, "offsets", None)
            if group is not None and offsets is not None and getattr(src.config, "commit_offsets", True):
                out[group] = offsets(_of_source(positions, src.name), _of_source(marks, src.name))
        return out

    async def _offsets_committed(self, window: Any) -> None:
        if self._in_transaction is None or self._in_transaction[0] is not window:
            return
        _, positions, marks = self._in_transaction
        self._in_transaction = None
        for src in self.sources:
            remember = getattr(src, "remember_marks", None)
            if remember is not None:
                await remember(_of_source(positions, src.name), _of_source(marks, src.name))

    async def _commit_all(self) -> None:
        if self.transactional_commits:
            return  # each window's transaction commits the offsets it makes safe, and nothing else does
        for src in self.sources:
            positions = self.tracker.safe_positions(src.name)
            if positions:
                try:
                    await src.commit(positions, self._marks(src.name, positions))
                except StateDirError:
                    raise  # a full or read-only state_dir stops the daemon, naming the file
                except Exception as exc:  # noqa: BLE001 - the next commit tries again
                    log.warning("commit of %s failed: %s", src.name, exc, extra={"component": src.name})

    async def _assigned(self, source: str, partitions: list[Hashable], epoch: int,
                        marks: dict[Hashable, Mark] | None = None,
                        resuming: dict[Hashable, int] | None = None) -> dict[Hashable, int]:
        """A source took `partitions`; `resuming` says from which committed positions it is about to
        read them. Returns the positions to read from instead, where a checkpoint covers more."""
        now = asyncio.get_running_loop().time()
        for p in partitions:
            self.engine.assign((source, p), now, epoch)
            if marks and p in marks:
                self.engine.seed((source, p), marks[p])
        log.info("%s: assigned %s", source, sorted(map(str, partitions)), extra={"component": source})
        if not resuming:
            return {}

        def accept(found: dict[Hashable, int]) -> set[Hashable]:
            return {p for p, pos in found.items() if pos >= resuming[p]}  # a checkpoint older than the commit: replay
        return self._restore(source, list(resuming), accept)

    def _restore(self, source: str, partitions: list[Hashable],
                 accept: Callable[[dict[Hashable, int]], set[Hashable]]) -> dict[Hashable, int]:
        """Bring back the checkpointed state of the partitions whose source `accept`s to read on from
        the checkpoint's position; returns those positions."""
        if self.checkpoints is None:
            return {}
        found = self.checkpoints.load(self._scopes[source], partitions)
        ok = accept({p: pos for p, (pos, _) in found.items()})
        for p in set(found) - ok:
            log.info("%s: checkpoint of %s not used (older than the commit, or the source cannot resume from it); "
                     "replaying from the commit", source, p, extra={"component": source})
        now = asyncio.get_running_loop().time()
        out = {}
        for p in ok:
            pos, blob = found[p]
            windows = self.engine.restore((source, p), pos, blob, now)
            out[p] = pos
            log.info("%s: restored %s from its checkpoint: %d open windows, reading on from %s", source, p, windows,
                     pos, extra={"component": source})
        return out

    async def _checkpoint(self, only: list[PartitionKey] | None = None) -> None:
        """Snapshot the open windows of `only` (default: every partition owned) with their positions."""
        if self.checkpoints is None or self.engine.time_range is not None:
            return  # a backfill re-reads a range; it has nothing to resume
        rows = []
        t0 = time.monotonic()
        for pk in only if only is not None else self.engine.owned():
            snap = self.engine.snapshot(pk)
            if snap is not None:
                rows.append((self._scopes[pk[0]], pk[1], snap[0], snap[1]))
        if rows:
            await asyncio.to_thread(self.checkpoints.save, rows)
            log.debug("checkpoint: %d partitions, %d bytes, %.0f ms", len(rows), self.checkpoints.last_bytes,
                      (time.monotonic() - t0) * 1000)

    async def _revoked(self, source: str, partitions: list[Hashable]) -> None:
        src = next(s for s in self.sources if s.name == source)
        safe = {p: pos for p, pos in self.tracker.safe_positions(source).items() if p in partitions}
        if safe and not self.transactional_commits:
            try:
                await src.commit(safe, self._marks(source, safe))
            except Exception as exc:  # noqa: BLE001 - the next owner replays a little more
                log.warning("commit on revoke of %s failed: %s", source, exc, extra={"component": source})
        try:
            await self._checkpoint([(source, p) for p in partitions])  # the next owner may share the store
        except StateDirError as exc:
            log.warning("checkpoint on revoke of %s failed: %s", source, exc, extra={"component": source})
        for p in partitions:
            self.engine.revoke((source, p))
        log.info("%s: revoked %s", source, sorted(map(str, partitions)), extra={"component": source})


def _of_source(by_partition: dict[PartitionKey, Any], source: str) -> dict[Hashable, Any]:
    """The entries of one source, keyed by its own partitions."""
    return {pk[1]: v for pk, v in by_partition.items() if pk[0] == source}
