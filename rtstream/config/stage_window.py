"""A windowed stage's own `window = { type = "hopping", size = "10s", hop = "2s" }` (same keys as
`[window]`, which is the default for every windowed stage without one).

In a flow of one chain the windowed aggregate's window is the pipeline's: it replaces `[window]`
(which may then be left out). A chained aggregate (one after the windowed aggregate) folds the
closed windows of the one before it and has no window of its own; nor do per-record or window stages.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from rtstream.config.flow import Flow
from rtstream.config.models import RootConfig, WindowConfig
from rtstream.config.problems import problems_from


def with_stage_window(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with `[window]` taken from the one stage that has a window, when `[window]` is left out."""
    stages = doc.get("stages")
    if "window" in doc or not isinstance(stages, dict):
        return doc
    own = [body["window"] for body in stages.values() if isinstance(body, dict) and isinstance(body.get("window"), dict)]
    return {**doc, "window": own[0]} if len(own) == 1 else doc


def stage_window_problems(root: RootConfig, flow: Flow, components: dict[str, Any]) -> list[tuple[str, str]]:
    """Check each stage's own window; the windowed aggregate's becomes the pipeline's `root.window`."""
    problems: list[tuple[str, str]] = []
    windowed: str | None = None
    for name in flow.stages:
        comp = components[name]
        if windowed is None and not getattr(comp.cls, "per_record", False):
            windowed = name if hasattr(comp.config, "aggregates") else ""  # the first window-level stage
        own = getattr(comp.config, "window", None)
        if own is None:
            continue
        key = f"stages.{name}.window"
        if name != windowed:
            before = f"the windows of {windowed!r}" if windowed else "each closed window"
            problems.append((key, f"only the windowed aggregate has a window; {name!r} gets {before}"))
            continue
        try:
            root.window = WindowConfig.model_validate(own)
        except ValidationError as exc:
            problems.extend(problems_from(exc, key, WindowConfig))
    return problems
