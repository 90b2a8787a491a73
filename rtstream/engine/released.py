"""Rows a stateful step lets go after a watermark advance (an event-time table join's stream rows,
rtstream.engine.temporal_state; an interval join's left rows with no partner, rtstream.engine.outer_rows),
folded as if they had just been read: through the per-record stages after that step, then into their
windows. Every such step hands them over through `take_released(final)`; this is the one fold for all.

A released row's record may be older (a lower offset) than rows already in its window, which were
released before it: the window's hold is lowered to it, so the commit never passes a row that is
only in an open window. Called before the windows the same advance closes are taken, so a row the
table's watermark lets go always finds its window open (that watermark is at least the pipeline's).
"""

from __future__ import annotations

from typing import Any

from rtstream.engine.commit_rule import Hold, HoldKind
from rtstream.engine.fold import BatchFold, BatchPass
from rtstream.model.batch import Batch
from rtstream.model.positions import PartitionKey
from rtstream.windows.watermark import NEVER

# released rows refused, not yet in the dead-letter file (steps count from 1): the one hold of every
# kind of step's refusals, released per partition by WindowEngine.dead_written
DEAD_PENDING = Hold(HoldKind.STATE, 0)


def fold_released(engine: BatchFold, final: bool = False) -> None:
    """Fold what each step released; the refusals go to `engine.released_dead`."""
    stages = engine.record_stages
    for i, stage in enumerate(stages):
        step = getattr(stage, "stateful_step", None)
        release = getattr(step, "take_released", None)
        if release is None:
            continue
        rows = release(final)
        if not rows:
            continue
        passes: dict[PartitionKey, BatchPass] = {}
        for pk, rec, row in rows:
            if pk not in engine._epochs:  # a revoked partition's rows went with it
                continue
            p = passes.get(pk)
            if p is None:
                batch = Batch(pk[0], pk[1], [], 0)
                p = passes[pk] = BatchPass(batch, pk, engine.store.panes_of(pk), engine._emitted_upto.get(pk, NEVER),
                                           engine._seeds.get(pk))
            try:
                for v in _after(stages[i + 1:], pk, rec, row, p):
                    ts = engine._time_of(p, rec, v)
                    if ts is not None and engine._fold_value(p, rec, v, ts):
                        _lower_holds(engine, pk, rec, v, ts)
            except Exception as exc:  # noqa: BLE001 - as in the fold: one row's failure dead-letters it
                p.reject("error", f"{type(exc).__name__}: {exc}", rec, row)
        for pk, p in passes.items():
            if p.dead:  # their rows no longer hold the commit: this does, until they are written
                engine.tracker.hold(pk, DEAD_PENDING, min(d.offset for d in p.dead if d.offset is not None))
                engine.released_dead.extend(p.dead)


def _after(stages: list[Any], pk: PartitionKey, rec: Any, row: dict[str, Any], p: BatchPass) -> list[dict[str, Any]]:
    values = [row]
    for stage in stages:
        out: list[dict[str, Any]] = []
        step = getattr(stage, "stateful_step", None)
        for v in values:
            try:
                out.extend(stage.apply(v) if step is None else step.at(pk, rec, v))
            except Exception as exc:  # noqa: BLE001 - a user function's failure dead-letters its record
                p.reject("stage_error", f"{type(exc).__name__}: {exc}", rec, v, stage=stage.name)
        values = out
    return values


def _lower_holds(engine: BatchFold, pk: PartitionKey, rec: Any, v: dict[str, Any], ts: int) -> None:
    """The windows (or session) the row joined hold its partition from its offset at the latest."""
    offset = rec.offset
    if engine.sessions is not None:
        agg = engine.aggregator
        key = v.get(agg.key) if agg is not None and agg.key is not None else (
            rec.key.decode("utf-8", "replace") if isinstance(rec.key, bytes) else rec.key)
        for s in engine.sessions.overlapping(pk, key, ts):
            if s.min_offset > offset:
                s.min_offset = offset
                engine.tracker.hold(pk, Hold(HoldKind.SESSION, s.id), offset)
        return
    size, hop = engine.size_ms, engine.hop_ms
    last = ts - ts % hop
    panes = engine.store.panes_of(pk)
    for start in (last - k * hop for k in range(size // hop)):
        pane = panes.get(start)
        if pane is not None and pane.min_offset > offset:
            pane.min_offset = offset
            engine.tracker.hold(pk, Hold(HoldKind.OPEN, start), offset)
