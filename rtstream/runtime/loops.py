"""The loops a running pipeline is made of, under one TaskGroup:

sources --(bounded queue of batches)--> windows --(bounded queue of closed windows)--> stages, sinks
A slow sink fills the second queue, which stalls the window loop, which fills the first queue, which
stalls the sources: memory stays bounded and Kafka simply fetches later. Beside them, the commit
loop commits what the commit rule allows, and the grace watch bounds a shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rtstream.connect.listen_error import ListenError
from rtstream.engine.emission import Emission
from rtstream.model.errors import ComponentError
from rtstream.runtime.build import PipelineParts
from rtstream.runtime.flush_group import GroupFlush, take_group
from rtstream.runtime.partitions import save_checkpoints

if TYPE_CHECKING:
    from rtstream.sources.base import Source

log = logging.getLogger("rtstream.runtime")
TICK = 0.2  # how often idle windows are checked against the wall clock
KEEPALIVE = 1.0  # how often a source blocked by a full queue is asked to stay alive
GRACE_RESERVE = 3.0  # seconds of shutdown_grace kept for what follows the loops


@dataclass(slots=True)
class SourceDone:
    source: str


class PipelineLoops:
    def __init__(self, rt: PipelineParts):
        self.rt = rt
        d = rt.settings.root.daemon
        self.batches: asyncio.Queue[Any] = asyncio.Queue(maxsize=d.queue_size)
        self.windows: asyncio.Queue[Emission | None] = asyncio.Queue(maxsize=d.flush_queue_size)
        self.drained = asyncio.Event()  # every closed window is written (or the flusher gave up)
        self.pumps: dict[str, asyncio.Task[None]] = {}
        self.grace_over = False

    async def run(self) -> None:
        rt = self.rt
        try:
            async with asyncio.TaskGroup() as tg:
                for src in rt.sources:
                    self.pumps[src.name] = tg.create_task(guarded(src.name, self._pump(src)))
                if rt.stopping:
                    self.stop_sources()
                window_loop = tg.create_task(guarded("windows", self._window_loop()))
                flushing = tg.create_task(guarded("flush", self._flush_loop()))
                committing = tg.create_task(guarded("commit", self._commit_loop(flushing)))
                tg.create_task(self._grace_watch(flushing, window_loop, committing))
        except* ComponentError as group:
            rt.exit_code = 1
            for exc in group.exceptions:
                log.error("component %s failed: %s", getattr(exc, "component", "?"), exc.__cause__ or exc,
                          exc_info=exc.__cause__, extra={"component": getattr(exc, "component", None)})

    def stop_sources(self) -> None:
        for task in self.pumps.values():
            task.cancel()

    async def _pump(self, src: Source) -> None:
        queue = self.batches
        async with aclosing(src.batches()) as batches:  # type: ignore[type-var]
            async for batch in batches:
                if queue.full():
                    await self._put_waiting(src, batch)
                else:
                    queue.put_nowait(batch)
        await queue.put(SourceDone(src.name))
        # A finished source may still belong to a group whose commits are pending: keep it alive
        # until the last window is written.
        while not self.drained.is_set():
            try:
                await asyncio.wait_for(self.drained.wait(), KEEPALIVE)
            except TimeoutError:
                await src.keepalive()

    async def _put_waiting(self, src: Source, batch: Any) -> None:
        """Backpressure: wait for room in the queue, keeping the source alive meanwhile."""
        put = asyncio.ensure_future(self.batches.put(batch))
        try:
            while not (await asyncio.wait({put}, timeout=KEEPALIVE))[0]:
                await src.keepalive()
        finally:
            put.cancel()  # a no-op once it is done; on cancellation, the batch is simply not queued

    async def _window_loop(self) -> None:
        rt = self.rt
        loop = asyncio.get_running_loop()
        engine, queue, flushq = rt.engine, self.batches, self.windows
        live = {s.name for s in rt.sources}
        records_in = rt.stats.records_in
        interval = rt.settings.root.state.checkpoint_interval
        next_checkpoint = loop.time() + (interval or 0)
        while not rt.stopping:
            for em in engine.take_restored():
                await flushq.put(em)
            if interval is not None and loop.time() >= next_checkpoint:
                await save_checkpoints(engine, rt.checkpoints, rt.scopes)
                next_checkpoint = loop.time() + interval
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                try:
                    item = await asyncio.wait_for(queue.get(), TICK)
                except TimeoutError:
                    item = None
            if isinstance(item, SourceDone):
                live.discard(item.source)
                for pk in engine.partitions(item.source):
                    engine.finish(pk)
            elif item is not None and engine.owns(item):
                records_in[item.source] = records_in.get(item.source, 0) + len(item.records)
                if rt.staging is not None:
                    item, staged_dead = await rt.staging.run(item)
                    if staged_dead:
                        await rt.dead_letters.write(staged_dead)
                    if not engine.owns(item):  # revoked while a lookup was awaited
                        continue
                dead = engine.process(item, loop.time())
                if dead:
                    await rt.dead_letters.write(dead)
                if engine.owns(item):  # a rebalance may have taken the partition meanwhile
                    rt.tracker.processed((item.source, item.partition), item.end)
            if not live:
                closed = engine.close_all()
                if dead := engine.take_dead():  # rows a step let go and refused (rtstream.engine.released)
                    await rt.dead_letters.write(dead)
                    engine.dead_written(dead)
                for em in closed:
                    await flushq.put(em)
                log.info("all sources finished: %d records read", engine.records_in)
                break
            closed = engine.close_ready(loop.time(), int(time.time() * 1000), queue.empty())
            if dead := engine.take_dead():
                await rt.dead_letters.write(dead)
                engine.dead_written(dead)
            for em in closed:
                await flushq.put(em)
        await flushq.put(None)

    async def _flush_loop(self) -> None:
        grouped = GroupFlush(self.rt.flusher, self.rt.history)
        try:
            while (em := await self.windows.get()) is not None:
                # the windows waiting behind it are flushed with it, as one group (rtstream.runtime.flush_group)
                groups = take_group(self.windows, em)
                for group in groups:
                    if group is not None:
                        await grouped.flush(group)
                if self.windows.empty():  # nothing waits behind it: write the history, release the windows
                    grouped.close()
                if groups[-1] is None:
                    break
        finally:
            grouped.close()
            self.drained.set()

    async def _commit_loop(self, flushing: asyncio.Task[Any]) -> None:
        interval = self.rt.settings.root.daemon.commit_interval
        while not flushing.done():
            await asyncio.wait({flushing}, timeout=interval)
            await self.rt.committer.commit_all()

    async def _grace_watch(self, flushing: asyncio.Task[Any], window_loop: asyncio.Task[Any],
                           committing: asyncio.Task[Any]) -> None:
        """After a stop, give the windows in flight `shutdown_grace` to be written; then cancel what
        is left (it stays uncommitted and is rebuilt on restart), whatever the sinks are doing."""
        stopping = asyncio.ensure_future(self.rt.stop_requested.wait())
        try:
            await asyncio.wait({stopping, flushing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if flushing.done() and committing.done():
            return
        grace = self.rt.settings.root.daemon.shutdown_grace
        # keep a little of the grace for the final checkpoint, commit and closes
        await asyncio.wait({flushing, committing}, timeout=grace - min(GRACE_RESERVE, grace / 4),
                           return_when=asyncio.ALL_COMPLETED)
        if not flushing.done():
            self.grace_over = True
            log.warning("shutdown grace of %.0fs is over with windows still unwritten; they stay uncommitted "
                        "and are rebuilt on restart", grace)
        if not (flushing.done() and committing.done()):
            for task in (flushing, window_loop, committing, *self.pumps.values()):
                task.cancel()


async def guarded(name: str, coro: Coroutine[Any, Any, Any]) -> Any:
    """Run `coro`, naming the component if it dies."""
    try:
        return await coro
    except ComponentError:
        raise
    except Exception as exc:  # noqa: BLE001 - name the component that died, then stop everything
        said = str(exc) if isinstance(exc, ListenError) else f"{type(exc).__name__}: {exc}"
        raise ComponentError(name, said) from exc
