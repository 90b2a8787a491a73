"""Flushing a closed window: run the window stages, then write every sink, then release commits."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

from rtstream.core.deadletter import DeadLetter, DeadLetterFile
from rtstream.core.engine import Emission
from rtstream.core.retry import backoff_delay
from rtstream.errors import RowsRejected
from rtstream.sinks.base import Sink
from rtstream.stages.base import Stage

log = logging.getLogger("rtstream.flush")


class WindowFlusher:
    """A stage that raises dead-letters the window's rows (the stage default); a sink that raises
    is retried with capped backoff until it succeeds (the sink default: never skip data)."""

    def __init__(self, stages: list[Stage], sinks: list[Sink], dead_letters: DeadLetterFile,
                 done: Callable[[Emission], None], retry_delay: float, max_retry_delay: float, retries: int = 2):
        self.stages = stages
        self.sinks = sinks
        self.dead_letters = dead_letters
        self.done = done
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.retries = retries
        self.windows_flushed = 0
        self.rows_out = 0
        self.on_flushed: list[Callable[[Emission, int, float], Awaitable[None] | None]] = []

    async def flush(self, em: Emission) -> None:
        began = time.monotonic()
        rows: list[dict[str, Any]] | None = em.rows
        for stage in self.stages:
            try:
                rows = await self._run_stage(stage, em, rows)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - a failing stage dead-letters this window only
                log.error("stage %s failed on window %s: %s: %s", stage.name, em.window.start_iso,
                          type(exc).__name__, exc, extra={"component": stage.name, "window": em.window.start_iso})
                await self.dead_letters.write([
                    DeadLetter("stage_error", f"{type(exc).__name__}: {exc}", stage=stage.name,
                               window=(em.window.start_ms, em.window.end_ms), value=row)
                    for row in rows or [{}]])
                rows = None
                break
        if rows is not None:
            start, end = em.window.start_iso, em.window.end_iso
            for row in rows:
                if "window_start" not in row:
                    row["window_start"] = start
                    row["window_end"] = end
            await asyncio.gather(*(self._write(sink, em, rows) for sink in self.sinks))
            self.rows_out += len(rows)
        self.done(em)
        self.windows_flushed += 1
        took = time.monotonic() - began
        log.info("window %s .. %s flushed: %d records in, %d rows out, %.0f ms", em.window.start_iso,
                 em.window.end_iso, em.window.input_count, len(rows or ()), took * 1000,
                 extra={"window": em.window.start_iso})

    async def _run_stage(self, stage: Stage, em: Emission, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await stage.run(em.window, list(rows))
            except Exception as exc:  # noqa: BLE001 - retried, then dead-lettered by the caller
                if attempt > self.retries:
                    raise
                delay = backoff_delay(attempt, self.retry_delay, self.max_retry_delay)
                log.warning("stage %s failed on window %s (attempt %d of %d, next in %.1fs): %s: %s", stage.name,
                            em.window.start_iso, attempt, self.retries + 1, delay, type(exc).__name__, exc,
                            extra={"component": stage.name})
                await asyncio.sleep(delay)

    async def _write(self, sink: Sink, em: Emission, rows: list[dict[str, Any]]) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                try:
                    await sink.write(em.window, rows)
                except RowsRejected as rejected:
                    await self.dead_letters.write([
                        DeadLetter("sink_rejected", reason, stage=sink.name,
                                   window=(em.window.start_ms, em.window.end_ms), value=row)
                        for batch, reason in rejected.rejected for row in batch])
                if attempt > 1:
                    log.warning("sink %s recovered on attempt %d for window %s", sink.name, attempt,
                                em.window.start_iso, extra={"component": sink.name})
                return
            except Exception as exc:  # noqa: BLE001 - retried; commits stay behind this window
                delay = backoff_delay(attempt, self.retry_delay, self.max_retry_delay)
                log.error("sink %s failed to write window %s (attempt %d, next in %.1fs): %s: %s",
                          sink.name, em.window.start_iso, attempt, delay, type(exc).__name__, exc,
                          extra={"component": sink.name, "window": em.window.start_iso})
                await asyncio.sleep(delay)
