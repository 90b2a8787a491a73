"""A windowed stage's own `window = { type = "hopping", size = "10s", hop = "2s" }` (same keys as
`[window]`, which is the default for every windowed stage without one).

A stage's window gives its own shape (type, size, hop, gap, records, schedule, emit...), and takes the
keys of event time it leaves out (`TIME_KEYS`) from `[window]`: a pipeline's records carry their time in
one field whatever the window, and `--set window.time_field=...` must reach every branch.

In a flow of one chain the windowed aggregate's window is the pipeline's: it replaces `[window]`
(which may then be left out); in a flow of several branches it is its branch's. A chained aggregate (one after the windowed aggregate) folds the
closed windows of the one before it and has no window of its own; nor do per-record or window stages.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from rtstream.config.branches import plan_branches
from rtstream.config.flow import Flow
from rtstream.config.models import RootConfig, WindowConfig
from rtstream.config.problems import problems_from
from rtstream.model.errors import ConfigError

TIME_KEYS = ("time", "time_field", "lateness", "idle_timeout")


def own_window(root: RootConfig | dict[str, Any] | None, own: dict[str, Any]) -> dict[str, Any]:
    """A stage's window with the event-time keys it leaves out taken from `[window]` (only those that
    `[window]` sets itself: a default stays the stage window's own default)."""
    if isinstance(root, RootConfig):
        window = root.window
        base = {key: _as_written(getattr(window, key)) for key in TIME_KEYS if key in window.model_fields_set}
    else:
        base = {key: root[key] for key in TIME_KEYS if isinstance(root, dict) and key in root}
    return {**base, **own}


def _as_written(value: Any) -> Any:
    """A parsed duration back as config text (durations need their unit)."""
    return f"{value!r}s" if isinstance(value, float) else value


def with_stage_window(doc: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """`doc` with `[window]` taken from the one stage that has a window when `[window]` is left out,
    and that stage's name (what a problem of that window is named after)."""
    stages = doc.get("stages")
    if "window" in doc or not isinstance(stages, dict):
        return doc, None
    own = [(name, body["window"]) for name, body in stages.items()
           if isinstance(body, dict) and isinstance(body.get("window"), dict)]
    return ({**doc, "window": own[0][1]}, own[0][0]) if len(own) == 1 else (doc, None)


def renamed(problems: list[tuple[str, str]], stage: str | None) -> list[tuple[str, str]]:
    """[window]'s problems named after the stage whose window stood for it."""
    if stage is None:
        return problems
    return [(f"stages.{stage}.{key}" if key == "window" or key.startswith("window.") else key, why)
            for key, why in problems]


def stage_window_problems(root: RootConfig, flow: Flow, components: dict[str, Any]) -> list[tuple[str, str]]:
    """Check each stage's own window; in one chain the windowed aggregate's becomes `root.window`."""
    problems: list[tuple[str, str]] = []
    for stages in _stage_lists(flow):
        windowed = _windowed(stages, components)
        for name in stages:
            own = getattr(components[name].config, "window", None)
            if own is None:
                continue
            key = f"stages.{name}.window"
            if name != windowed:
                before = f"the windows of {windowed!r}" if windowed else "each closed window"
                problems.append((key, f"only the windowed aggregate has a window; {name!r} gets {before}"))
                continue
            try:
                window = WindowConfig.model_validate(own_window(root, own))
            except ValidationError as exc:
                problems.extend(problems_from(exc, key, WindowConfig))
                continue
            if not flow.branched:
                root.window = window
    return problems


def branch_windows(root: RootConfig, flow: Flow, components: dict[str, Any]) -> list[tuple[list[str], WindowConfig]]:
    """Each branch's stages and window (one chain: the flow's stages and `root.window`); call it on a
    checked config."""
    if not flow.branched:
        return [(list(flow.stages), root.window)]
    out = []
    for stages in _stage_lists(flow):
        windowed = _windowed(stages, components)
        own = getattr(components[windowed].config, "window", None) if windowed else None
        out.append((stages, WindowConfig.model_validate(own_window(root, own)) if own is not None else root.window))
    return out


def _stage_lists(flow: Flow) -> list[list[str]]:
    if not flow.branched:
        return [list(flow.stages)]
    try:
        return [[*b.trunk, *b.stages] for b in plan_branches(flow.graph)]
    except ConfigError:
        return []  # branch_problems has said why


def _windowed(stages: list[str], components: dict[str, Any]) -> str | None:
    """The windowed aggregate of a chain of stages: its first window-level stage, if an aggregate."""
    for name in stages:
        comp = components[name]
        if not getattr(comp.cls, "per_record", False):
            return name if hasattr(comp.config, "aggregates") else None
    return None
