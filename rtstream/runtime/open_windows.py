"""The windows still open, as the status page and `/api/status` list them (Airflow's running column):
bounds and records folded in so far, oldest first. In a flow of several branches, every branch's,
each naming its branch and the components that will run on it when it closes."""

from __future__ import annotations

from typing import Any

from rtstream.config.branches import plan_branches
from rtstream.config.flow import Flow
from rtstream.model.window import iso_utc


def open_windows(engine: Any, flow: Flow) -> list[dict[str, Any]]:
    engines = getattr(engine, "engines", None)  # a BranchedEngine (rtstream.engine.branches)
    if engines is None:
        return _of(engine)
    out = []
    for (name, components), e in zip(_labels(engine, flow), engines, strict=True):
        out += [w | {"branch": name, "components": components} for w in _of(e)]
    out.sort(key=lambda w: (w["window_start"], w["window_end"], w["branch"]))
    return out


def branch_watermarks(engine: Any, flow: Flow) -> list[dict[str, Any]]:
    """Each branch's watermark in a flow of several branches (their lateness and windows may differ);
    empty for one chain. `/api/status` `watermark` is the least of them: the one that holds commits back."""
    engines = getattr(engine, "engines", None)
    if engines is None:
        return []
    return [{"branch": name, "watermark": iso_utc(e.watermark.current) if e.watermark.current > 0 else None,
             "lateness_s": e.watermark.lateness_ms / 1000}
            for (name, _), e in zip(_labels(engine, flow), engines, strict=True)]


def _labels(engine: Any, flow: Flow) -> list[tuple[str, list[str]]]:
    # each engine's branches (several after one aggregate: rtstream.runtime.branch_build), or one each
    return getattr(engine, "labels", None) or [(b.name, [*b.stages, *b.sinks]) for b in plan_branches(flow.graph)]


def _of(engine: Any) -> list[dict[str, Any]]:
    # sessions are per key and move as they grow: they are not listed
    if engine.sessions is not None:
        return []
    return [{"window_start": iso_utc(start), "window_end": iso_utc(start + engine.size_ms),
             "records": sum(pane.count for _, pane in panes)} for start, panes in engine.store.snapshot().items()]
