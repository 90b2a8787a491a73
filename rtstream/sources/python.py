"""`type = "python"`: call a function of yours on a clock-aligned interval; what it returns is the input.

The fetch_data task of a DAG, run as a source: the function (plain or async) returns a list of
records (dicts) or one record. They are appended to a durable spool, so a restart never loses what
was fetched and `time = "source"` replays the same windows.

As in Airflow, the call at 12:05 is the run of the interval [12:00, 12:05): its records are stamped
with the interval's last millisecond, so they land in the window that ends at 12:05 and are written
as soon as that window closes (lateness plus idle_timeout after the call), not a whole interval
later. A function that takes the task context (`**context`, `ds`, `ti` ...) gets that interval's.
On start the latest interval is fetched at once, unless the spool says it was fetched already.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import Any

import orjson
from pydantic import Field

from rtstream.airflow.callables import load_callable
from rtstream.airflow.task_context import AirflowTask
from rtstream.model.durations import Duration
from rtstream.model.errors import user_code_failure
from rtstream.model.registry import register
from rtstream.sources.spool.spooled_source import SpooledConfig, SpooledSource

log = logging.getLogger("rtstream.source.python")


class PythonSourceConfig(SpooledConfig):
    call: Any = Field(description="\"module:function\" called each interval for the records of that interval")
    interval: Duration = Field(default=300.0, description="how often the function is called")


@register("source", "python")
class PythonSource(SpooledSource):
    Config = PythonSourceConfig

    async def start(self) -> None:
        c = self.config
        self.fn = load_callable(c.call, self.context.extra.get("search_dirs"))
        self.open_spool()
        self.fetched_through = int(orjson.loads(self.spool.last_marker() or b"{}").get("through", 0))
        self.calls = 0
        self.start_ticker(c.interval)

    async def fetch_for_run(self) -> None:
        """In a backfill, the call of every interval in the range, as Airflow's backfill runs each run."""
        span = self.context.extra.get("backfill_range")
        if span is None:
            await self.fetch_once()
            return
        step_ms = max(1, round(self.config.interval * 1000))
        end_ms = (span[0] // step_ms + 1) * step_ms
        while end_ms <= span[1]:
            await self.fetch_interval(end_ms)
            end_ms += step_ms

    async def fetch_once(self) -> int:
        end_ms = self.interval_end_ms()
        if end_ms <= self.fetched_through and not self._once:
            return 0  # fetched before a restart: wait for the next tick
        return await self.fetch_interval(end_ms)

    async def fetch_interval(self, end_ms: int) -> int:
        """Call the function for the interval ending at `end_ms`; spool what it returns."""
        start_ms = end_ms - max(1, round(self.config.interval * 1000))
        try:
            if isinstance(self.fn, AirflowTask):
                out = await asyncio.to_thread(self.fn.fetch, start_ms, end_ms)
            elif inspect.iscoroutinefunction(self.fn):
                out = await self.fn()
            else:
                out = await asyncio.to_thread(self.fn)
            if inspect.isawaitable(out):
                out = await out
        except BaseException as exc:  # noqa: BLE001 - sys.exit() in user code fails this call, not the daemon
            raise user_code_failure(exc) from exc
        if out is None:
            out = []
        elif isinstance(out, dict):
            out = [out]
        payloads = [orjson.dumps(r, default=str) for r in out]
        await self.spool.append(payloads, arrival_ms=end_ms - 1, marker=orjson.dumps({"through": end_ms}))
        self.fetched_through = end_ms
        self.calls += 1
        log.info("%s: fetched %d records for [%s, %s)", self.name, len(payloads), _hhmmss(start_ms), _hhmmss(end_ms),
                 extra={"component": self.name})
        return len(payloads)

    def describe(self) -> str:
        c = self.config
        ref = c.call if isinstance(c.call, str) else getattr(c.call, "__qualname__", "?")
        ctx = "**context" if isinstance(self.fn if hasattr(self, "fn") else c.call, AirflowTask) else ""
        return f"python: {ref}({ctx}) every {c.interval:g}s, its records in the window ending at the call"


def _hhmmss(ms: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ms / 1000))
