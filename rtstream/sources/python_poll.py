"""`type = "python"`: call a function of yours on a clock-aligned interval; what it returns is the input.

The fetch_data task of a DAG, run as a source: the function (plain or async, no arguments) returns a
list of records (dicts) or one record. They are appended to a durable spool with the call's time,
so a restart never loses what was fetched and `time = "source"` replays the same windows.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import Any

import orjson

from rtstream.config.durations import Duration
from rtstream.core.registry import register
from rtstream.sources.spool import SpoolFull
from rtstream.sources.spooled import SpooledConfig, SpooledSource
from rtstream.stages.base import load_callable

log = logging.getLogger("rtstream.source.python")


class PythonSourceConfig(SpooledConfig):
    call: Any
    interval: Duration = 300.0


@register("source", "python")
class PythonSource(SpooledSource):
    Config = PythonSourceConfig

    async def start(self) -> None:
        c = self.config
        self.fn = load_callable(c.call, self.context.extra.get("search_dirs"))
        self.open_spool()
        self.calls = self.failures = 0
        self._caller = asyncio.create_task(self._call_forever(), name=f"{self.name}-call")

    async def call_once(self) -> int:
        arrival = int(time.time() * 1000)
        if inspect.iscoroutinefunction(self.fn):
            out = await self.fn()
        else:
            out = await asyncio.to_thread(self.fn)
        if out is None:
            out = []
        elif isinstance(out, dict):
            out = [out]
        payloads = [orjson.dumps(r, default=str) for r in out]
        if payloads:
            await self.spool.append(payloads, arrival_ms=arrival)
        self.calls += 1
        return len(payloads)

    async def _call_forever(self) -> None:
        interval = self.config.interval
        while True:
            try:
                await self.call_once()
            except SpoolFull:
                log.warning("%s: spool full, skipping this call until the sinks catch up", self.name)
            except Exception as exc:  # noqa: BLE001 - a failing call is retried at the next tick
                self.failures += 1
                log.error("%s: call failed, next at the following tick: %s: %s", self.name, type(exc).__name__, exc,
                          extra={"component": self.name})
            now = time.time()
            await asyncio.sleep((now // interval + 1) * interval - now)

    async def close(self) -> None:
        if hasattr(self, "_caller"):
            self._caller.cancel()
            try:
                await self._caller
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing
                pass
        await super().close()

    def describe(self) -> str:
        c = self.config
        ref = c.call if isinstance(c.call, str) else getattr(c.call, "__qualname__", "?")
        return f"python: {ref}() every {c.interval:g}s"
