"""Per-record stages that must await (lookups), run over a whole batch before it is folded.

Without such a stage, per-record stages run inside the fold (rtstream.engine.fold), synchronously.
With one, the batch is decoded here, every per-record stage runs in flow order over all its records,
and a lookup awaits once per batch for the keys its cache cannot answer, under its retry policy.
A source's `where` is applied here, right after decoding, before the stages (and so before a
lookup asks for anything); the fold then gets the staged records, already decoded and filtered. Every record that fails here is
dead-lettered with its reason and position; the rest go on.

A lookup whose store fails is not a failure of its records: after the policy's retries it halts
(`on_failure = "halt"`, a lookup's default) and keeps retrying at the capped delay, holding this
batch, hence every later one and every commit past it, with `failing` naming it for /readyz.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, cast

from rtstream.engine.dead_letter import DeadLetter
from rtstream.engine.decode import decode_json, not_an_object
from rtstream.model.batch import Batch
from rtstream.model.policy import Policy
from rtstream.model.record import Record, SourceRecord
from rtstream.stages.base import Stage
from rtstream.support.backoff import backoff_delay
from rtstream.where.language import Where

log = logging.getLogger("rtstream.staging")

if TYPE_CHECKING:
    from rtstream.stages.lookup import LookupStage


class RecordStaging:
    def __init__(self, stages: list[Stage], policies: dict[str, Policy], source_where: dict[str, Where] | None = None):
        self.stages = stages
        self.policies = policies
        self.source_where = source_where or {}  # source name -> its compiled `where`
        self.filtered_out = 0  # records a source's `where` skipped
        self.failing: dict[str, str] = {}  # stage -> its last error while halted (the runtime shares the flusher's)

    async def run(self, batch: Batch) -> tuple[Batch, list[DeadLetter]]:
        dead: list[DeadLetter] = []

        def reject(reason: str, detail: str, rec: SourceRecord, value: Any, stage: str | None = None) -> None:
            dead.append(DeadLetter(reason, detail, batch.source, batch.partition, rec.offset, stage, None, value))

        pairs: list[tuple[SourceRecord, dict[str, Any]]] = []
        where = self.source_where.get(batch.source)
        keep = where.matches if where is not None else None
        for rec in batch.records:
            value = rec.value
            if not batch.decoded:
                try:
                    value = decode_json(value)
                except Exception as exc:  # noqa: BLE001 - invalid JSON, or too deep for the exact re-read
                    reject("decode", f"invalid JSON: {exc}", rec, rec.value)
                    continue
            if value.__class__ is not dict:
                reject("decode", not_an_object(value), rec, rec.value)
                continue
            if keep is not None and not keep(value):
                self.filtered_out += 1
                continue  # read (the batch's `read` counts it), not windowed, not dead-lettered
            pairs.append((rec, value))
        for stage in self.stages:
            out: list[tuple[SourceRecord, dict[str, Any]]] = []
            if stage.awaits_per_batch:  # a lookup (the only stage that awaits); its module loads only when used
                stage = cast("LookupStage", stage)
                answers, wanted = stage.cached([v for _, v in pairs])
                failed: BaseException | None = None
                if wanted:
                    try:
                        await self._attempts(stage, wanted, answers)
                    except Exception as exc:  # noqa: BLE001 - on_failure = "dead_letter": their records are
                        failed = exc
                for rec, v in pairs:
                    values, why = stage.enrich(v, answers, failed)
                    if why is not None:
                        reject("lookup", why, rec, v, stage.name)
                    out.extend((rec, x) for x in values)
            else:
                for rec, v in pairs:
                    try:
                        out.extend((rec, x) for x in stage.apply(v))  # type: ignore[attr-defined]
                    except Exception as exc:  # noqa: BLE001 - a user function's failure dead-letters its record
                        reject("stage_error", f"{type(exc).__name__}: {exc}", rec, v, stage.name)
            pairs = out
        staged = [Record(v, rec.offset, rec.timestamp, rec.key) for rec, v in pairs]
        return Batch(batch.source, batch.partition, staged, batch.end, decoded=True, epoch=batch.epoch,
                     key_field=batch.key_field, read=len(batch.records)), dead

    async def _attempts(self, stage: LookupStage, keys: set[Any], answers: dict[Any, Any]) -> None:
        """Fetch `keys` into `answers` under the stage's policy; each retry asks only for what is
        missing. After the last retry: raise (dead_letter), or halt and keep retrying (halt)."""
        policy = self.policies[stage.name]
        attempt = 0
        try:
            while True:
                attempt += 1
                missing = {k for k in keys if k not in answers}
                try:
                    await asyncio.wait_for(stage.fetch(missing, answers), policy.timeout)
                except Exception as exc:
                    error = f"{type(exc).__name__}: {str(exc)[:300]}" if str(exc) else \
                        f"timed out after {policy.timeout:g}s" if isinstance(exc, TimeoutError) else type(exc).__name__
                    final = attempt > policy.retries
                    if final and policy.on_failure == "dead_letter":
                        log.error("%s: lookup of %d keys failed after %d attempts: %s", stage.name, len(keys), attempt,
                                  error, extra={"component": stage.name})
                        raise
                    if final:
                        self.failing[stage.name] = error
                    delay = backoff_delay(attempt, policy.retry_delay, policy.max_retry_delay)
                    log.warning("%s: lookup failed (attempt %d, next in %.1fs%s): %s", stage.name, attempt, delay,
                                ", halted" if final else "", error, extra={"component": stage.name})
                    await asyncio.sleep(delay)
                    continue
                if attempt > 1:
                    log.warning("%s: lookup recovered on attempt %d", stage.name, attempt,
                                extra={"component": stage.name})
                return
        finally:
            self.failing.pop(stage.name, None)
