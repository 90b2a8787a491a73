"""Flushing the closed windows that wait together as one group.

Session windows close many at once (one per key whose session ended at the same watermark step), and
each paid a window's fixed costs on its own: about six run-history transactions and their log line.
The flush loop takes every window already waiting in its queue (up to GROUP_MAX) and flushes them
here, each exactly as alone (rtstream.runtime.flush: its stages, its sinks under their policies, its
dead letters, its history rows and log line, in window order), except that:

- the run history is written in one transaction per group (RunHistory.defer / write_deferred): the
  same rows per window, in the order they were asked for;
- a written window is released to the commit rule (`done`) only once its history is written, and
  every SETTLE_EVERY seconds during a long group (a slow or halted sink), so a window written before
  a failing one is released and its history visible as it was one by one, within that delay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rtstream.engine.emission import Emission

if TYPE_CHECKING:
    from rtstream.runtime.flush import WindowFlusher
    from rtstream.runtime.run_history import RunHistory

GROUP_MAX = 256  # windows in one group: bounds how long a written window waits to be released
SETTLE_EVERY = 0.5  # seconds: during a longer group, write the history and release what is written


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


async def flush_group(flusher: Any, history: RunHistory | None, group: Sequence[Emission]) -> None:
    """Flush `group` in order through `flusher` (a WindowFlusher or BranchFlushers)."""
    if len(group) == 1 or history is None:
        for em in group:
            await flusher.flush(em)
        return
    flushers: list[WindowFlusher] = list(getattr(flusher, "flushers", None) or [flusher])
    loop = asyncio.get_running_loop()
    timer: asyncio.TimerHandle | None = None

    def settle() -> None:
        history.write_deferred()
        for f in flushers:
            held, f.held = f.held or [], []
            for em in held:
                f.done(em)

    def tick() -> None:
        nonlocal timer
        settle()
        timer = loop.call_later(SETTLE_EVERY, tick)

    history.defer()
    for f in flushers:
        f.held = []
    timer = loop.call_later(SETTLE_EVERY, tick)
    try:
        for em in group:
            await flusher.flush(em)
    finally:  # also on cancellation (the shutdown grace is over): what was written is released
        timer.cancel()
        settle()
        history.write_deferred(stop=True)
        for f in flushers:
            f.held = None
