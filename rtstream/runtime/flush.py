"""Flushing a closed window: run the window stages, then write every sink, then release commits.

Each stage call and sink write follows its failure policy (rtstream.model.policy), the one retry
layer: components never retry inside a call. A call is attempted `retries + 1` times, each attempt
bounded by the policy's timeout, with capped backoff and jitter between attempts, or, when the sink
raised `SinkBackpressure`, the delay it asked for (capped by `max_retry_delay`). After the last
attempt the window's rows go to dead letters (`on_failure = "dead_letter"`, the stage default) or
the component halts (`"halt"`, the sink default): `failing` names it at once (what /readyz reads),
and it keeps retrying at the capped delay, holding back every later window and every commit behind
it. Final failures and recoveries are sent to the alert webhook.

A sink with a `where` is given only the rows it holds for (rtstream.where.language), possibly none: the
window is then written to it with no rows, a successful run like any other.

A sink that raises `RowsRejected` wrote the window except the rows it lists, which it can never
write because of what they hold: those go to dead letters (`sink_rejected`) and nothing is retried.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from rtstream.engine.dead_letter import DeadLetter
from rtstream.engine.emission import Emission
from rtstream.model.errors import RowsRejected, SinkBackpressure
from rtstream.model.policy import Policy
from rtstream.runtime.dead_letter_file import DeadLetterFile
from rtstream.runtime.sink_assets import announce, asset_of
from rtstream.sinks.base import Sink
from rtstream.stages.base import Stage
from rtstream.support.backoff import backoff_delay

if TYPE_CHECKING:
    from rtstream.runtime.alert import AlertWebhook
    from rtstream.runtime.committer import Committer
    from rtstream.runtime.observers import WindowObserver
    from rtstream.runtime.run_history import RunHistory

log = logging.getLogger("rtstream.flush")


class GaveUp(Exception):
    """The last retry failed and the policy says dead-letter."""


class WindowFlusher:
    def __init__(self, stages: list[Stage], sinks: list[Sink], dead_letters: DeadLetterFile,
                 done: Callable[[Emission], None], policies: dict[str, Policy], *,
                 history: RunHistory | None = None, observers: Sequence[WindowObserver] = (),
                 alert: AlertWebhook | None = None, first_stage: str | None = None,
                 committer: Committer | None = None):
        self.stages = stages
        self.sinks = sinks
        self.dead_letters = dead_letters
        self.done = done
        self.policies = policies
        self.history = history
        self.observers = observers
        self.alert = alert
        self.first_stage = first_stage  # the aggregate folded as records arrived, shown in the history
        self.committer = committer  # for sinks that commit source offsets with the window (transactions)
        self.windows_flushed = 0
        self.rows_out = 0  # final rows only
        self.rows_running = 0  # rows of running results (emit = "updates", "final": false)
        self.rows_by_sink: dict[str, int] = {s.name: 0 for s in sinks}
        self.retries_by: dict[str, int] = {}
        self.failures: dict[str, int] = {}
        self.failing: dict[str, str] = {}  # component -> its last error, while it is halted and retrying
        self.latencies: collections.deque[float] = collections.deque(maxlen=10_000)  # closed -> written, s
        # during a group flush (runtime/flush_group.py) written windows wait here to be released until
        # their run history is written
        self.held: list[Emission] | None = None
        # each written window's INFO line; a large group logs one line for all (runtime/flush_group.py)
        self.log_each = True

    def _record(self, em: Emission, component: str, kind: str, state: str, **kw: Any) -> None:
        if self.history is not None and em.window.final:  # a running result is not a run
            self.history.update(em.window.start_iso, em.window.end_iso, component, kind, state, **kw)

    async def flush(self, em: Emission) -> None:
        began = time.monotonic()
        rows = await self.window_rows(em)
        if rows is not None:
            await asyncio.gather(*(self._write(sink, em, rows) for sink in self.sinks))
        self.finish(em, rows, began)

    async def window_rows(self, em: Emission) -> list[dict[str, Any]] | None:
        """The window's rows after its stages, with their bounds; None when a stage dead-lettered it."""
        rows: list[dict[str, Any]] | None = em.rows
        if self.first_stage is not None:
            self._record(em, self.first_stage, "stage", "success", records=len(em.rows))
        for stage in self.stages:
            t0 = time.monotonic()
            self._record(em, stage.name, "stage", "running")
            before = rows or []
            try:
                rows = await self._attempts(em, stage.name, "stage",
                                            lambda s=stage, r=before: s.run(em.window, list(r)))  # type: ignore[misc]
                self._record(em, stage.name, "stage", "success", records=len(rows or ()),
                             duration_ms=(time.monotonic() - t0) * 1000)
            except GaveUp as exc:
                # A window's rows are not records: each letter names where the window's records begin
                # (its first partition, and every partition in `positions`), which a replay reads from.
                source, partition, offset = (*em.partitions[0][0], em.partitions[0][1]) if em.partitions else (
                    None, None, None)
                positions = {f"{src}/{part}": first for (src, part), first in em.partitions[:20]}
                await self.dead_letters.write([
                    DeadLetter("stage_error", str(exc), source, partition, offset, stage.name,
                               (em.window.start_ms, em.window.end_ms), row,
                               {"positions": positions} if len(positions) > 1 else {})
                    for row in before or [{}]])
                self._record(em, stage.name, "stage", "dead_lettered", attempts=self.policies[stage.name].retries + 1,
                             error=str(exc), duration_ms=(time.monotonic() - t0) * 1000)
                rows = None
                break
        if rows is not None:
            start, end, ident = em.window.start_iso, em.window.end_iso, em.window.ident
            for row in rows:
                if "window_start" not in row:
                    row["window_start"] = start
                    row["window_end"] = end
                if ident is not None:
                    row["window_id"] = ident  # a count window's identity, what sinks upsert it by
                if em.tag_final:
                    row["final"] = em.window.final
        return rows

    def finish(self, em: Emission, rows: list[dict[str, Any]] | None, began: float) -> None:
        """Count the written window, release it (or hold it for its group) and log it."""
        if rows is not None:
            if em.window.final:
                self.rows_out += len(rows)
            else:  # a running result: counted apart, or the rate would spike at every update
                self.rows_running += len(rows)
        if self.held is not None:
            self.held.append(em)
        else:
            self.done(em)
        took = time.monotonic() - began
        if not em.window.final:
            log.debug("running result of window %s .. %s: %d records so far, %d rows", em.window.start_iso,
                      em.window.end_iso, em.window.input_count, len(rows or ()), extra={"window": em.window.start_iso})
            return
        self.windows_flushed += 1
        if self.history is not None:
            self.history.note_flushed()
        self.latencies.append(time.monotonic() - em.closed_at)
        for observer in self.observers:
            observer.window_flushed(em.window, took)
        if self.history is not None and self.windows_flushed % 10 == 0:
            self.history.trim()
        (log.info if self.log_each else log.debug)(
            "window %s .. %s flushed: %d records in, %d rows out, %.0f ms", em.window.start_iso, em.window.end_iso,
            em.window.input_count, len(rows or ()), took * 1000, extra={"window": em.window.start_iso})

    async def _write(self, sink: Sink, em: Emission, rows: list[dict[str, Any]],
                     failed: BaseException | None = None) -> None:
        t0 = time.monotonic()
        if sink.where is not None:  # routing: this sink gets only its rows; none is still a written window
            rows = sink.where.select(rows)
        self._record(em, sink.name, "sink", "running", records=len(rows))
        state, error = "success", None
        written = len(rows)
        try:
            if sink.commits_source_offsets and self.committer is not None:
                commit = await self.committer.for_window(em.window)
                try:
                    await self._attempts(em, sink.name, "sink", lambda: sink.write_committing(em.window, rows, commit))
                except RowsRejected:
                    await self.committer.confirmed(commit)  # the transaction went through with the other rows
                    raise
                await self.committer.confirmed(commit)
            else:
                await self._attempts(em, sink.name, "sink", lambda: sink.write(em.window, rows), failed)
            # the window is written: its asset event (if the sink declares one) is kept before it releases
            # its holds; retried under the sink's policy when the store cannot keep it
            if asset_of(sink) is not None:
                await self._attempts(em, sink.name, "sink", lambda: announce(sink, em.window, len(rows)))
        except RowsRejected as rejected:  # the receiver refused some rows for good: not a failure to retry
            state, error = "dead_lettered", _bounded(str(rejected))
            letters = [DeadLetter("sink_rejected", reason, stage=sink.name,
                                  window=(em.window.start_ms, em.window.end_ms), value=row)
                       for batch, reason in rejected.rejected for row in batch]
            written -= len(letters)
            await self.dead_letters.write(letters)
            if asset_of(sink) is not None:  # the other rows were written: an event of them
                n = written
                try:
                    await self._attempts(em, sink.name, "sink", lambda: announce(sink, em.window, n))
                except GaveUp as exc:  # said by _attempts; the rows are written and their letters kept
                    error = _bounded(f"{error}; its asset event was not kept: {exc}")
        except GaveUp as exc:
            state, error = "dead_lettered", str(exc)
            written = 0
            await self.dead_letters.write([
                DeadLetter("sink_failed", str(exc), stage=sink.name, window=(em.window.start_ms, em.window.end_ms),
                           value=row) for row in rows])
        self.rows_by_sink[sink.name] = self.rows_by_sink.get(sink.name, 0) + written
        self._record(em, sink.name, "sink", state, records=len(rows), error=error,
                     duration_ms=(time.monotonic() - t0) * 1000)

    async def _attempts(self, em: Emission, name: str, kind: str, call: Callable[[], Awaitable[Any]],
                        failed: BaseException | None = None) -> Any:
        """Run `call` under the component's policy; raises GaveUp when it says dead-letter. `failed`:
        what the first attempt raised, made already (a group write stopped at this window)."""
        policy = self.policies[name]
        attempt = 0
        alerted = False
        while True:
            attempt += 1
            try:
                if failed is not None:
                    first, failed = failed, None
                    raise first
                if policy.timeout is not None:
                    result = await asyncio.wait_for(call(), policy.timeout)
                else:
                    result = await call()
            except RowsRejected:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure goes through the policy
                error = _describe(exc, policy)
                final = attempt > policy.retries
                if final and not alerted:
                    alerted = True
                    self.failures[name] = self.failures.get(name, 0) + 1
                    if self.alert is not None:
                        await self.alert.send("failed", window=em.window, component=name, error=error, attempts=attempt)
                if final and policy.on_failure == "dead_letter":
                    log.error("%s %s gave up on window %s after %d attempts: %s", kind, name, em.window.start_iso,
                              attempt, error, extra={"component": name, "window": em.window.start_iso})
                    raise GaveUp(error) from exc
                if final:
                    self.failing[name] = error
                self.retries_by[name] = self.retries_by.get(name, 0) + 1
                if isinstance(exc, SinkBackpressure):  # the destination said when: that replaces the backoff
                    delay = min(exc.retry_after, policy.max_retry_delay)
                else:
                    delay = backoff_delay(attempt, policy.retry_delay, policy.max_retry_delay)
                log.error("%s %s failed on window %s (attempt %d, next in %.1fs%s): %s", kind, name,
                          em.window.start_iso, attempt, delay, ", halted" if final else "", error,
                          extra={"component": name, "window": em.window.start_iso})
                self._record(em, name, kind, "failed" if final else "retrying", attempts=attempt, error=error)
                await asyncio.sleep(delay)
                continue
            if attempt > 1:
                log.warning("%s %s recovered on attempt %d for window %s", kind, name, attempt, em.window.start_iso,
                            extra={"component": name})
            if alerted and self.alert is not None:
                await self.alert.send("recovered", window=em.window, component=name, error=None, attempts=attempt)
            self.failing.pop(name, None)
            return result


def percentile(values: Any, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _describe(exc: BaseException, policy: Policy) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"timed out after {policy.timeout:g}s"
    return _bounded(f"{type(exc).__name__}: {exc}")


def _bounded(text: str, limit: int = 1000) -> str:
    """An error as logs, alerts and the run history show it: an exception may quote a whole row."""
    return text if len(text) <= limit else text[:limit] + "…"
