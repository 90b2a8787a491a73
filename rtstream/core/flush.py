"""Flushing a closed window: run the window stages, then write every sink, then release commits."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from rtstream.core.deadletter import DeadLetter, DeadLetterFile
from rtstream.core.engine import Emission
from rtstream.core.retry import backoff_delay
from rtstream.errors import RowsRejected
from rtstream.sinks.base import Sink
from rtstream.stages.base import Stage

if TYPE_CHECKING:
    from rtstream.admin.history import RunHistory
    from rtstream.admin.metrics import Metrics

log = logging.getLogger("rtstream.flush")


class WindowFlusher:
    """A stage that still raises after `retries` dead-letters the window's rows (the stage default);
    a sink that raises is retried with capped backoff until it succeeds (the sink default: never
    skip data), holding back every later window and every commit behind it."""

    def __init__(self, stages: list[Stage], sinks: list[Sink], dead_letters: DeadLetterFile,
                 done: Callable[[Emission], None], retry_delay: float, max_retry_delay: float, retries: int = 2,
                 history: RunHistory | None = None, metrics: Metrics | None = None, first_stage: str | None = None):
        self.stages = stages
        self.sinks = sinks
        self.dead_letters = dead_letters
        self.done = done
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.retries = retries
        self.history = history
        self.metrics = metrics
        self.first_stage = first_stage  # the aggregate folded as records arrived, shown in the history
        self.windows_flushed = 0
        self.rows_out = 0
        self.rows_by_sink: dict[str, int] = {s.name: 0 for s in sinks}
        self.retries_by: dict[str, int] = {}
        self.failures: dict[str, int] = {}
        self.failing: dict[str, str] = {}  # sink -> its last error, while it is being retried

    def _record(self, em: Emission, component: str, kind: str, state: str, **kw: Any) -> None:
        if self.history is not None:
            self.history.update(em.window.start_iso, em.window.end_iso, component, kind, state, **kw)

    async def flush(self, em: Emission) -> None:
        began = time.monotonic()
        rows: list[dict[str, Any]] | None = em.rows
        if self.first_stage is not None:
            self._record(em, self.first_stage, "stage", "success", records=len(em.rows))
        for stage in self.stages:
            t0 = time.monotonic()
            self._record(em, stage.name, "stage", "running")
            try:
                rows = await self._run_stage(stage, em, rows)  # type: ignore[arg-type]
                self._record(em, stage.name, "stage", "success", records=len(rows or ()),
                             duration_ms=(time.monotonic() - t0) * 1000)
            except Exception as exc:  # noqa: BLE001 - a failing stage dead-letters this window only
                error = f"{type(exc).__name__}: {exc}"
                log.error("stage %s failed on window %s: %s", stage.name, em.window.start_iso, error,
                          extra={"component": stage.name, "window": em.window.start_iso})
                self.failures[stage.name] = self.failures.get(stage.name, 0) + 1
                await self.dead_letters.write([
                    DeadLetter("stage_error", error, stage=stage.name,
                               window=(em.window.start_ms, em.window.end_ms), value=row)
                    for row in rows or [{}]])
                self._record(em, stage.name, "stage", "dead_lettered", attempts=self.retries + 1, error=error,
                             duration_ms=(time.monotonic() - t0) * 1000)
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
        if self.metrics is not None:
            self.metrics.flush_seconds.observe(took)
            self.metrics.window_records.observe(em.window.input_count)
        if self.history is not None and self.windows_flushed % 10 == 0:
            self.history.trim()
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
                self.retries_by[stage.name] = self.retries_by.get(stage.name, 0) + 1
                delay = backoff_delay(attempt, self.retry_delay, self.max_retry_delay)
                log.warning("stage %s failed on window %s (attempt %d of %d, next in %.1fs): %s: %s", stage.name,
                            em.window.start_iso, attempt, self.retries + 1, delay, type(exc).__name__, exc,
                            extra={"component": stage.name})
                self._record(em, stage.name, "stage", "retrying", attempts=attempt, error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(delay)

    async def _write(self, sink: Sink, em: Emission, rows: list[dict[str, Any]]) -> None:
        attempt = 0
        t0 = time.monotonic()
        self._record(em, sink.name, "sink", "running", records=len(rows))
        while True:
            attempt += 1
            try:
                state = "success"
                try:
                    await sink.write(em.window, rows)
                except RowsRejected as rejected:
                    state = "dead_lettered"
                    await self.dead_letters.write([
                        DeadLetter("sink_rejected", reason, stage=sink.name,
                                   window=(em.window.start_ms, em.window.end_ms), value=row)
                        for batch, reason in rejected.rejected for row in batch])
                if attempt > 1:
                    log.warning("sink %s recovered on attempt %d for window %s", sink.name, attempt,
                                em.window.start_iso, extra={"component": sink.name})
                self.failing.pop(sink.name, None)
                self.rows_by_sink[sink.name] = self.rows_by_sink.get(sink.name, 0) + len(rows)
                self._record(em, sink.name, "sink", state, attempts=attempt, records=len(rows),
                             duration_ms=(time.monotonic() - t0) * 1000)
                return
            except Exception as exc:  # noqa: BLE001 - retried; commits stay behind this window
                error = f"{type(exc).__name__}: {exc}"
                self.failing[sink.name] = error
                self.retries_by[sink.name] = self.retries_by.get(sink.name, 0) + 1
                delay = backoff_delay(attempt, self.retry_delay, self.max_retry_delay)
                log.error("sink %s failed to write window %s (attempt %d, next in %.1fs): %s",
                          sink.name, em.window.start_iso, attempt, delay, error,
                          extra={"component": sink.name, "window": em.window.start_iso})
                self._record(em, sink.name, "sink", "retrying" if attempt <= self.retries else "failed",
                             attempts=attempt, error=error)
                await asyncio.sleep(delay)
