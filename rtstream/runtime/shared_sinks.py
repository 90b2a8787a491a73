"""A sink several branches feed (rtstream.config.shared_sinks): one sink, started once, and one door
to it per branch.

Each branch's flusher writes through its own door, under the sink's policy, and releases that
branch's commits when its window is written (rtstream.runtime.flush), as for a sink of its own. A
door adds the branch's name to copies of the rows (the flusher hands the same rows to the branch's
other sinks) and takes the sink's lock: one window is written at a time, whichever branch it comes
from, so a sink that reads, merges and replaces a window's output (a file) never interleaves two.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rtstream.config.shared_sinks import BRANCH_FIELD
from rtstream.model.window import Window
from rtstream.sinks.base import Sink


class SharedSink(Sink):
    """One branch's door to `inner`: its name, config and `where` are the sink's own."""

    type_name = "shared"  # what the sink is: `describe()`, the inner sink's

    def __init__(self, inner: Sink, branch: str, lock: asyncio.Lock):
        super().__init__(inner.name, inner.config, inner.context)
        self.inner = inner
        self.branch = branch
        self.lock = lock

    async def start(self) -> None:
        pass  # the sink itself is started (and closed) once, by the runtime

    async def write(self, window: Window, rows: list[dict[str, Any]]) -> None:
        tagged = [r if r.get(BRANCH_FIELD) == self.branch else {**r, BRANCH_FIELD: self.branch} for r in rows]
        async with self.lock:
            await self.inner.write(window, tagged)

    def describe(self) -> str:
        return self.inner.describe()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # what a sink offers besides writing (its asset's store, its state)
