"""An interval join's `how = "left"`: the left rows the watermark let go without a partner.

A left row at `ts` can meet a right row until the watermark (which allows for lateness) passes
`ts + upper`; then the join lets it go (rtstream.engine.join_state), and if it never found one it
goes out alone, with its own fields and its own time, so it lands in its own window. The join hands
them back through `take_released` like any step that lets rows go: rtstream.engine.released folds
them (its windows hold the commit at the row's offset; its refusals go through `take_dead`). That
window must still be open: windows close `upper` later than the watermark says (`hold_back`), so a
window closes only after every left row in it was either matched or let go.
"""

from __future__ import annotations

from typing import Any

from rtstream.model.positions import PartitionKey
from rtstream.model.record import Record

EVERYTHING = 2**62  # a watermark past every row's last chance: the end of a finite run


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


def let_left_go(state: Any, row: tuple[int, int, PartitionKey, dict[str, Any]]) -> None:
    """A left row the watermark passed goes out alone, unless it found a partner."""
    ident = (row[2], row[1])
    if ident in state.matched:
        state.matched.discard(ident)
    else:
        value = row[3]
        state.released.append((row[2], row[1], state.shape.row(value, None, value.get(state.time_field, row[0]))))


def take_lone_rows(state: Any, final: bool) -> list[tuple[PartitionKey, Record, dict[str, Any]]]:
    """The left rows let go alone since the last call, as (partition, record, row); `final`: every
    source has ended, so every left row still waiting for a partner goes out alone now."""
    if state.matched is None:
        return []
    if final:
        state.evict_before(EVERYTHING)
        for pk in list(state._dirty):  # their offsets are let go: hold as the step holds after an eviction
            state._rehold(pk)
        state._dirty.clear()
    taken, state.released = state.released, []
    return [(pk, Record(value, offset), value) for pk, offset, value in taken]
