"""Flushing the closed windows that wait together as one group.

Session windows close many at once (one per key whose session ended at the same watermark step), and
each paid a window's fixed costs on its own: about six run-history transactions and their log line.
The flush loop takes every window already waiting in its queue (up to GROUP_MAX) and flushes them
here, each exactly as alone (rtstream.runtime.flush: its stages, its sinks under their policies, its
dead letters, its history rows and log line, in window order), except that:

- the run history is written in one transaction (RunHistory.defer / write_deferred) once no window
  waits behind a group (GroupFlush.close, from the flush loop), and every SETTLE_EVERY seconds while
  windows keep coming or a slow or halted sink holds one: the same rows per window, in the order
  they were asked for;
- a written window is released to the commit rule (`done`) only once its history is written, so a
  window written before a failing one is released and its history visible within that delay.

A sink with `write_windows` (python, file) is given a group's windows in one call: one trip to its
thread for the lot (_flush_writing_groups).

A group of more than LOG_EACH_UPTO per-key windows (sessions, count windows) logs one INFO line for
all of them (how many, the first and the last, records in, rows out), each window's own line at
DEBUG: thousands of sessions closing at once would otherwise be thousands of lines, each kept in the
run history. A smaller group, and time windows however many close at once (a backlog read from a
file), log each window's line at INFO, as when flushed alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rtstream.engine.emission import Emission
from rtstream.runtime.sink_assets import asset_of

if TYPE_CHECKING:
    from rtstream.runtime.flush import WindowFlusher
    from rtstream.runtime.run_history import RunHistory

log = logging.getLogger("rtstream.flush")

GROUP_MAX = 256  # windows in one group: bounds how long a written window waits to be released
SETTLE_EVERY = 0.5  # seconds: while windows keep coming, write the history and release what is written
LOG_EACH_UPTO = 4  # windows of a group that each log their INFO line; a larger group logs one line


def take_group(queue: asyncio.Queue[Any], first: Emission | list[Emission]) -> list[list[Emission] | None]:
    """`first` (a window, or the windows one step closed) and the windows already waiting behind it, in
    groups of at most GROUP_MAX, in order; None last when the end was among them."""
    waiting: list[Emission] = list(first) if isinstance(first, list) else [first]
    end = False
    while len(waiting) < GROUP_MAX:
        try:
            item = queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        if item is None:
            end = True
            break
        waiting.extend(item if isinstance(item, list) else [item])
    groups: list[list[Emission] | None] = [waiting[i:i + GROUP_MAX] for i in range(0, len(waiting), GROUP_MAX)]
    return groups + [None] if end else groups


class GroupFlush:
    """Flushes groups in order through `flusher` (a WindowFlusher or BranchFlushers), deferring the
    run history while windows keep coming: it is written, and the written windows released, at
    `close` (the flush loop's, once nothing waits behind a group) and every SETTLE_EVERY seconds."""

    def __init__(self, flusher: Any, history: RunHistory | None):
        self.flusher, self.history = flusher, history
        self.flushers: list[WindowFlusher] = list(getattr(flusher, "flushers", None) or [flusher])
        self.window_flushers = _window_flushers(flusher)  # those that log each window (a fan-out's branches)
        self._timer: asyncio.TimerHandle | None = None  # set while deferring
        # a sink that commits the source offsets in its own transaction (Kafka exactly_once) commits
        # what is released when it writes: a release deferred past its window is never in a transaction
        self.at_once = history is None or any(getattr(sink, "commits_source_offsets", False)
                                              for f in self.flushers for sink in getattr(f, "sinks", ()))

    async def flush(self, group: Sequence[Emission]) -> None:
        final = [em.window for em in group if em.window.final]  # a running result logs at DEBUG anyway
        if len(final) <= LOG_EACH_UPTO or any(w.key is None for w in final):
            await self._flush(group)
            return
        began, windows, rows = time.monotonic(), self.flusher.windows_flushed, self.flusher.rows_out
        for f in self.window_flushers:
            f.log_each = False
        try:
            await self._flush(group)
        finally:
            for f in self.window_flushers:
                f.log_each = True
        windows = self.flusher.windows_flushed - windows
        if windows:
            log.info("%d windows flushed, the first %s .. %s, the last %s .. %s: %d records in, %d rows out, %.0f ms",
                     windows, final[0].start_iso, final[0].end_iso, final[-1].start_iso, final[-1].end_iso,
                     sum(w.input_count for w in final), self.flusher.rows_out - rows, (time.monotonic() - began) * 1000)

    async def _flush(self, group: Sequence[Emission]) -> None:
        if self.at_once or self.history is None:
            for em in group:
                await self.flusher.flush(em)
            return
        if self._timer is None:
            self.history.defer()
            for f in self.flushers:
                f.held = []
            self._timer = asyncio.get_running_loop().call_later(SETTLE_EVERY, self._tick)
        if len(self.flushers) == 1 and len(group) > 1 and _groups_writes(self.flushers[0]):
            await _flush_writing_groups(self.flushers[0], group)
        else:
            for em in group:
                await self.flusher.flush(em)

    def _tick(self) -> None:
        self._settle()
        self._timer = asyncio.get_running_loop().call_later(SETTLE_EVERY, self._tick)

    def _settle(self) -> None:
        assert self.history is not None
        self.history.write_deferred()
        for f in self.flushers:
            held, f.held = f.held or [], []
            for em in held:
                f.done(em)

    def close(self) -> None:
        """Write the history, release what is written and stop deferring; also after a cancellation
        (the shutdown grace is over): what was written is released, what was not stays held."""
        if self._timer is None:
            return
        self._timer.cancel()
        self._timer = None
        self._settle()
        assert self.history is not None
        self.history.write_deferred(stop=True)
        for f in self.flushers:
            f.held = None


async def flush_group(flusher: Any, history: RunHistory | None, group: Sequence[Emission]) -> None:
    """Flush one group and write its history (GroupFlush for one group)."""
    grouped = GroupFlush(flusher, history)
    try:
        await grouped.flush(group)
    finally:
        grouped.close()


def _window_flushers(flusher: Any) -> list[Any]:
    """The WindowFlushers in `flusher` (itself, or a branch's or a fan-out's, however nested)."""
    inner = getattr(flusher, "flushers", None)
    return [f for i in inner for f in _window_flushers(i)] if inner else [flusher]


def _groups_writes(flusher: WindowFlusher) -> bool:
    """Every sink takes several windows in one call and needs nothing per window (a timeout per attempt,
    a transaction with the source offsets, an asset event, a halt in progress); and no window stage can
    halt (a lookup's store), which would hold back the windows before it, stages all running first."""
    if not hasattr(flusher, "sinks"):
        return False  # a window fan-out (rtstream.runtime.branch_flush) goes window by window
    # the sink's own class has write_windows: a shared sink's door (runtime/shared_sinks.py) forwards
    # attributes to its sink, which would skip the door's lock and branch tag
    return (all(hasattr(type(sink), "write_windows") and not sink.commits_source_offsets and asset_of(sink) is None
                and flusher.policies[sink.name].timeout is None and sink.name not in flusher.failing
                for sink in flusher.sinks)
            and all(flusher.policies[stage.name].on_failure == "dead_letter" for stage in flusher.stages))


async def _flush_writing_groups(flusher: WindowFlusher, group: Sequence[Emission]) -> None:
    """Every window's stages, then each sink given the group's windows in one call, each window
    finished (counted, released to its group, logged) in order as soon as every sink has it. From a
    window whose write failed on, that sink goes window by window under its policy (the failed call
    counting as its first attempt), as when flushed alone."""
    began = time.monotonic()
    ready = [(em, await flusher.window_rows(em)) for em in group]
    written = [(i, em, rows) for i, (em, rows) in enumerate(ready) if rows is not None]
    sinks_left = [len(flusher.sinks) if rows is not None else 0 for _, rows in ready]
    finished = 0

    def wrote(i: int) -> None:
        nonlocal finished
        sinks_left[i] -= 1
        while finished < len(ready) and sinks_left[finished] == 0:
            flusher.finish(*ready[finished], began)
            finished += 1

    if written and flusher.sinks:
        await asyncio.gather(*(_write_group(flusher, sink, written, wrote) for sink in flusher.sinks))
    while finished < len(ready):  # no sink, or only windows a stage dead-lettered
        flusher.finish(*ready[finished], began)
        finished += 1


async def _write_group(flusher: WindowFlusher, sink: Any, written: list[tuple[int, Emission, list[dict[str, Any]]]],
                       wrote: Callable[[int], None]) -> None:
    chosen = [(em, sink.where.select(rows) if sink.where is not None else rows) for _, em, rows in written]
    for em, rows in chosen:
        flusher._record(em, sink.name, "sink", "running", records=len(rows))
    t0 = time.monotonic()
    n, failed = await sink.write_windows([(em.window, rows) for em, rows in chosen])
    each_ms = (time.monotonic() - t0) * 1000 / max(n, 1)
    for (i, _, _), (em, rows) in zip(written[:n], chosen[:n], strict=True):
        flusher.rows_by_sink[sink.name] = flusher.rows_by_sink.get(sink.name, 0) + len(rows)
        flusher._record(em, sink.name, "sink", "success", records=len(rows), duration_ms=each_ms)
        wrote(i)
    for k, (i, em, rows) in enumerate(written[n:]):
        await flusher._write(sink, em, rows, failed if k == 0 else None)
        wrote(i)
