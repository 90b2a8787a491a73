"""An interval join's `how = "left"`: the left rows the watermark let go without a partner, folded
into their windows as the engine closes windows (rtstream.engine.closing).

A left row at `ts` can meet a right row until the watermark (which allows for lateness) passes
`ts + upper`; then the join lets it go (rtstream.engine.join_state), and if it never found one it
goes out alone, with its own fields and its own time, so it lands in its own window. That window
must still be open: windows close `upper` later than the watermark says (`hold_back`), so a
window closes only after every left row in it was either matched or let go. A row let go is folded
through the per-record stages after the join, with its own partition and offset, so its window holds
the commit at that offset (not later) until written.

Pure: no I/O, no await; what a later stage or the window refuses is kept for the loops to write
(`take_letters`), its offset held until then.
"""

from __future__ import annotations

from typing import Any

from rtstream.engine.commit_rule import Hold, HoldKind
from rtstream.engine.dead_letter import DeadLetter
from rtstream.engine.fold import BatchPass
from rtstream.model.batch import Batch
from rtstream.model.positions import PartitionKey
from rtstream.model.record import Record
from rtstream.windows.watermark import NEVER

EVERYTHING = 2**62  # a watermark past every row's last chance: the end of a finite run
LETTERS = Hold(HoldKind.STATE, 0)  # the offsets of released rows refused, until their letters are written


def outer_steps(engine: Any) -> list[tuple[int, Any]]:
    """(index in the record stages, step) of each interval join with how = "left" (found once)."""
    found = engine.__dict__.get("_outer_steps")
    if found is None:
        found = engine.__dict__["_outer_steps"] = [
            (i, s.stateful_step) for i, s in enumerate(engine.record_stages)
            if getattr(getattr(s, "stateful_step", None), "matched", None) is not None]
    return found  # type: ignore[no-any-return]


def hold_back(engine: Any) -> int:
    """How much later than the watermark windows close: the longest `upper` of a left interval join."""
    return max((max(step.upper, 0) for _, step in outer_steps(engine)), default=0)


def fold_released(engine: Any, everything: bool = False) -> None:
    """Fold every left row let go without a partner into its windows (all still kept, at the end of
    a finite run)."""
    for i, step in outer_steps(engine):
        if everything:
            step.evict_before(EVERYTHING)
            for pk in list(step._dirty):
                step._rehold(pk)
            step._dirty.clear()
        taken, step.released = step.released, []
        for pk, offset, value in taken:
            if pk in engine._epochs:  # a revoked partition's rows went with it
                _fold_one(engine, engine.record_stages[i + 1:], pk, offset, value)


def _fold_one(engine: Any, later: list[Any], pk: PartitionKey, offset: int, value: dict[str, Any]) -> None:
    rec = Record(value, offset)
    p = BatchPass(Batch(pk[0], pk[1], [], offset + 1, True), pk, engine.store.panes_of(pk),
                  engine._emitted_upto.get(pk, NEVER), engine._seeds.get(pk))
    values = [dict(value)]
    for stage in later:  # as the fold runs them (rtstream.engine.fold `_apply_maps`)
        out: list[dict[str, Any]] = []
        step = getattr(stage, "stateful_step", None)
        for v in values:
            try:
                out.extend(stage.apply(v) if step is None else step.at(pk, rec, v))
            except Exception as exc:  # noqa: BLE001 - a user function's failure dead-letters its row
                p.reject("stage_error", f"{type(exc).__name__}: {exc}", rec, v, stage=stage.name)
        values = out
    for v in values:
        ts = engine._time_of(p, rec, v)
        if ts is None or not engine._fold_value(p, rec, v, ts):
            continue
        for start in _starts(engine, ts):  # an older offset than the pane's first: it holds from here
            pane = p.panes.get(start)
            if pane is not None and pane.min_offset > offset:
                pane.min_offset = offset
                engine.tracker.hold(pk, Hold(HoldKind.OPEN, start), offset)
    if p.dead:
        letters = engine.__dict__.setdefault("_outer_letters", [])
        letters.extend(p.dead)
        engine.tracker.hold(pk, LETTERS, offset)


def _starts(engine: Any, ts: int) -> list[int]:
    size, hop = engine.size_ms, engine.hop_ms
    last = ts - ts % hop
    return [last - k * hop for k in range(size // hop)]


def take_letters(engine: Any) -> list[DeadLetter]:
    """What a later stage or the window refused of the rows let go; `letters_written` once they are kept."""
    return list(engine.__dict__.get("_outer_letters", ()))


def letters_written(engine: Any, letters: list[DeadLetter]) -> None:
    kept = engine.__dict__.get("_outer_letters", [])
    del kept[:len(letters)]
    if not kept:
        for pk in list(engine._epochs):
            engine.tracker.release(pk, LETTERS)
