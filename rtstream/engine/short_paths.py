"""Which short paths the fold (engine/fold.py) may take for a batch, and the one of hopping windows
(sessions have theirs in engine/session_path.py).

The short paths fold a value whose windows are all open the way the general path would, without
its per-value calls; anything else about the value (a window not opened yet or already emitted,
other time formats, a backfill's time range, stages with a join's or keyed stage's state)
falls through to the general path, in offset order. tests/unit/engine/test_fold_short_paths.py
compares both on random input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rtstream.engine.commit_rule import Hold, HoldKind
from rtstream.engine.session_path import session_path
from rtstream.engine.state import EngineState
from rtstream.windows.watermark import NEVER

# (the fold's BatchPass, record, value) -> the value's time when folded, NEVER when refused, None when
# not taken (the general path folds it)
ValueFold = Callable[[Any, Any, dict[str, Any]], int | None]


def short_paths(fold: EngineState) -> tuple[bool, Callable[[dict[str, Any]], list[dict[str, Any]]] | None,
                                          ValueFold | None]:
    """(tumbling short path allowed, the one stateless per-record stage's apply, the hopping or session
    windows' short path)."""
    maps = fold.record_stages
    plain = not any(getattr(m, "stateful_step", None) for m in maps)  # no join's or keyed stage's state
    shaped = fold.time_mode == "event" and plain and fold.time_range is None
    agg = fold.aggregator
    if fold.sessions is not None:
        keyed = shaped and agg is not None and agg.key is not None
        return False, maps[0].apply if keyed and len(maps) == 1 else None, session_path(fold) if keyed else None
    fast = shaped and fold.hop_ms == fold.size_ms
    one = maps[0].apply if fast and len(maps) == 1 else None
    hops = _hopping(fold) if shaped and fold.hop_ms != fold.size_ms and agg is not None else None
    return fast, one, hops


def _hopping(fold: EngineState) -> ValueFold:
    """Fold a value into every hopping window holding it when all are open: the value's time when it
    joined one, NEVER when refused by the first; None when not taken (the general path folds it).
    Refusals as the general path's: the first (latest) window refusing refuses the value whole, a
    later one only for its own sum."""
    size, hop, tf = fold.size_ms, fold.hop_ms, fold.time_field
    offsets = tuple(k * hop for k in range(size // hop))  # latest window first, as the general path
    reach = offsets[-1] - size  # the oldest window holding t ends at last - reach
    update = fold.aggregator.update  # type: ignore[union-attr]

    def fold_hopping(p: Any, rec: Any, v: dict[str, Any]) -> int | None:
        t = v.get(tf)
        if t.__class__ is not int or not 100_000_000_000 <= t < 100_000_000_000_000:
            return None
        last = t - t % hop  # type: ignore[operator]
        if last - reach <= p.closed_upto:
            return None  # a window holding it was emitted: late, or replayed (the general path tells)
        panes = p.panes
        got = [panes.get(last - o) for o in offsets]
        if None in got:
            return None  # a window to open: the general path opens it and holds its offset
        joined = False
        for o, pane in zip(offsets, got, strict=True):
            why = update(pane.table, v, t)  # type: ignore[union-attr, arg-type]
            if why is None:
                pane.count += 1  # type: ignore[union-attr]
                joined = True
                continue
            start = last - o
            p.reject("invalid", why, rec, v, window=(start, start + size) if joined else None)
            if not pane.table:  # type: ignore[union-attr]
                del panes[start]
                fold.tracker.release(p.pk, Hold(HoldKind.OPEN, start))
            if not joined:
                break
        if joined:
            return t  # type: ignore[return-value]
        if p.seed is not None:
            fold.replayed_done += 1
        return NEVER

    return fold_hopping
