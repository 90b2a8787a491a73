"""The base of sources whose input is first made durable in a local spool (HTTP ingest, HTTP poll,
python): the pipeline reads, commits and replays the spool, whatever fills it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Hashable
from typing import Any, Literal

from pydantic import Field

from rtstream.model.batch import Batch
from rtstream.model.positions import Mark
from rtstream.sources.base import Source, SourceConfig
from rtstream.sources.spool.spool_file import Spool, SpoolFull
from rtstream.support.secrets import redact

log = logging.getLogger("rtstream.source")


class SpooledConfig(SourceConfig):
    max_spool: int = Field(default=1 << 30, ge=1024, description="bytes waiting for the sinks before refusing more")
    segment_bytes: int = Field(default=16 << 20, ge=1024, description="size of one spool file on disk")
    fsync: Literal["always", "interval"] = Field(default="always",
        description="\"always\": each accepted batch is on disk before it is acknowledged")
    batch_size: int = Field(default=5000, ge=1, description="records per batch at most")


class SpooledSource(Source):
    """Subclasses that fetch on a schedule implement `fetch_once` and call `start_ticker`.

    In a run of `rtstream test` (`context.extra["run_once"]`) there is no ticker: the source fetches
    once, reads what that fetch spooled and finishes, so the run ends when its windows are written.
    """

    spool: Spool
    _ticker: asyncio.Task[None] | None = None
    _once = False
    failures = 0
    fetch_error: str | None = None  # why the last fetch failed, until one succeeds (for /readyz)

    async def fetch_once(self) -> int:
        raise NotImplementedError

    async def fetch_for_run(self) -> None:
        """What a run-once source fetches (a python source in a backfill fetches every interval)."""
        await self.fetch_once()

    @property
    def finite(self) -> bool:
        return self._once

    def interval_end_ms(self) -> int:
        """The end of the interval a fetch now is the run of: the latest boundary of `interval` on the
        clock (in a test run, the end of the interval starting at `--at`). Its records belong to the
        interval before it (stamped end - 1 ms), as Airflow's run at 12:05 is the run of [12:00, 12:05),
        so they are written when that window closes, not a whole interval later."""
        step_ms = max(1, round(self.config.interval * 1000))  # type: ignore[attr-defined]
        at = self.context.extra.get("run_at_ms")
        if at is not None:
            return (at // step_ms + 1) * step_ms
        return int(time.time() * 1000) // step_ms * step_ms

    def start_ticker(self, interval: float) -> None:
        if self.context.extra.get("run_once"):
            self._once = True
            return
        self._ticker = asyncio.create_task(self._tick_forever(interval), name=f"{self.name}-ticker")

    async def _tick_forever(self, interval: float) -> None:
        """Fetch now, then at every multiple of `interval` on the clock, like the cron it replaces.
        A failed fetch is logged and tried at the next tick: the ticker outlives any one failure."""
        while True:
            try:
                await self.fetch_once()
                self.fetch_error = None
            except SpoolFull:
                log.warning("%s: spool full, skipping this tick until the sinks catch up", self.name,
                            extra={"component": self.name})
            except Exception as exc:  # noqa: BLE001 - see the docstring
                self.failures += 1
                self.fetch_error = redact(f"fetch failing: {type(exc).__name__}: {exc}")[:500]
                log.error("%s: fetch failed, next at the following tick: %s: %s", self.name, type(exc).__name__,
                          exc, extra={"component": self.name})
            now = time.time()
            await asyncio.sleep((now // interval + 1) * interval - now)

    def not_ready(self) -> str | None:
        return self.fetch_error  # a source whose every fetch fails takes no input, whatever the daemon says

    def open_spool(self) -> None:
        c: Any = self.config
        self.spool = Spool(self.context.state_dir / "spool" / self.name, segment_bytes=c.segment_bytes,
                           max_bytes=c.max_spool, fsync=c.fsync)
        self.spool.open()

    async def batches(self) -> AsyncIterator[Batch]:
        if self._once:
            await self.fetch_for_run()  # a failure here fails the run, naming this source
        async for batch in self.spool.read(self.name, self.config.batch_size, follow=not self._once):
            yield batch

    async def commit(self, positions: dict[Hashable, int], marks: dict[Hashable, Mark] | None = None) -> None:
        pos = positions.get(0)
        if pos is not None:
            self.spool.commit(pos, (marks or {}).get(0))

    def resume_at(self, positions: dict[Hashable, int]) -> set[Hashable]:
        pos = positions.get(0)
        if pos is None or not self.spool.committed <= pos <= self.spool.end:
            return set()
        self.spool.read_from = pos
        return {0}

    def pending_bytes(self) -> int | None:
        return self.spool.pending_bytes if hasattr(self, "spool") else None

    def resume_marks(self) -> dict[Hashable, Mark]:
        return {0: Mark(*self.spool.mark)} if self.spool.mark else {}

    def resumed(self) -> dict[Hashable, int]:
        return {0: self.spool.committed}  # the spool survives restarts: it reads on from its commit

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if hasattr(self, "spool"):
            self.spool.close()
