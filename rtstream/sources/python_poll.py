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
        self.calls = 0
        self.start_ticker(c.interval)

    async def fetch_once(self) -> int:
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

    def describe(self) -> str:
        c = self.config
        ref = c.call if isinstance(c.call, str) else getattr(c.call, "__qualname__", "?")
        return f"python: {ref}() every {c.interval:g}s"
