"""The fold's short path for session windows with an aggregate keyed by a field (Nexmark q11's shape).

A value whose key has no open session overlapping it opens one; a value falling into exactly one
open session of its key stretches it; both as `_join_session` (engine/fold.py) does, without its
per-value calls. Anything else (a value bridging two sessions, one before what was emitted: late or
replayed, other time formats, a key that is not a scalar) falls through to the general path, in
offset order. tests/unit/engine/test_session_short_path.py compares both on random input.
"""

from __future__ import annotations

from typing import Any

from rtstream.engine.commit_rule import Hold, HoldKind
from rtstream.engine.state import EngineState
from rtstream.windows.watermark import NEVER


def session_path(fold: EngineState) -> Any:
    """The short path as a `(BatchPass, record, value) -> int | None` (engine/short_paths.py): the
    value's time when it joined a session, NEVER when the aggregate refused it, None when not taken."""
    store, agg, tf = fold.sessions, fold.aggregator, fold.time_field
    assert store is not None and agg is not None and agg.key is not None
    gap, kf, update, by_partition, hold = store.gap, agg.key, agg.update, store.by_partition, fold.tracker.hold

    def fold_session(p: Any, rec: Any, v: dict[str, Any]) -> int | None:
        t = v.get(tf)
        if t.__class__ is not int or not 100_000_000_000 <= t < 100_000_000_000_000 or t < p.closed_upto:
            return None
        key = v.get(kf)
        if key.__class__ is dict or key.__class__ is list:
            return None
        by_key = by_partition.get(p.pk)
        sessions = by_key.get(key) if by_key is not None else None
        hit = None
        if sessions:
            for s in sessions:
                if s.start < t + gap and t < s.last + gap:  # type: ignore[operator]
                    if hit is not None:
                        return None  # it bridges two: the general path merges them
                    hit = s
        if hit is None:
            table: dict[Any, list[Any]] = {}
            why = update(table, v, t)  # type: ignore[arg-type]
            if why is not None:
                p.reject("invalid", why, rec, v)
                return NEVER
            hit = store.open(p.pk, key, t, rec.offset, table)  # type: ignore[arg-type]
            hold(p.pk, Hold(HoldKind.SESSION, hit.id), rec.offset)
        else:
            why = update(hit.table, v, t)  # type: ignore[arg-type]
            if why is not None:
                p.reject("invalid", why, rec, v)
                return NEVER
            if t > hit.last:  # type: ignore[operator]
                hit.last = t  # type: ignore[assignment]
            elif t < hit.start:  # type: ignore[operator]
                hit.start = t  # type: ignore[assignment]
        hit.count += 1
        return t  # type: ignore[no-any-return]

    return fold_session
