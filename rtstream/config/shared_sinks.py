"""A sink fed by several branches (`a >> per_min >> out; a >> per_hour >> out`): fan-in at a sink.

The sink gets each branch's windows, the rows as that branch makes them plus one field, `branch` (the
branch's last stage), and writes them one window at a time (rtstream.runtime.shared_sinks). A sink
is idempotent per (window_start, key), and two branches' windows may start together (a minute and the
hour it opens), so the sink upserts by (window_start, branch, key): every branch into it must end in
an aggregate (one row per key and window) and share its key. Raw records (a source straight into the
sink) or a window stage's rows have no key to tell them apart, and are refused with the reason.
"""

from __future__ import annotations

from typing import Any

from rtstream.config.branches import KEY, Branch, plan_branches
from rtstream.config.flow import Flow
from rtstream.config.models import RootConfig
from rtstream.config.stage_window import branch_windows
from rtstream.model.errors import ConfigError

BRANCH_FIELD = "branch"
ROWS = object()  # a branch whose rows have no key (raw records, a window stage's rows)


def branch_key(branch: Branch, window_type: str, components: dict[str, Any]) -> str | None | object:
    """The field a branch's output rows are keyed by, None for one row per window, ROWS for rows with no key."""
    names = [*branch.trunk, *branch.stages]  # a branch after a fan-out ends with its trunk's last stage
    last = components[names[-1]] if names else None
    if last is None or getattr(last.cls, "per_record", False) or not hasattr(last.config, "aggregates"):
        return ROWS
    key = getattr(last.config, "key", None)
    return key if key else "key" if window_type == "session" else None


def fed_by(branches: list[Branch]) -> dict[str, list[int]]:
    """sink -> the branches feeding it (by index), in flow order."""
    out: dict[str, list[int]] = {}
    for i, b in enumerate(branches):
        for s in b.sinks:
            out.setdefault(s, []).append(i)
    return out


def shared_sink_keys(root: RootConfig, flow: Flow, components: dict[str, Any]) -> dict[str, list[str]]:
    """sink fed by several branches -> the fields it upserts by (besides window_start); a checked config."""
    keys, _ = _check(root, flow, components)
    return keys


def shared_sink_problems(root: RootConfig, flow: Flow, components: dict[str, Any]) -> list[tuple[str, str]]:
    if not flow.branched:
        return []
    return _check(root, flow, components)[1]


def _check(root: RootConfig, flow: Flow, components: dict[str, Any]) -> tuple[dict[str, list[str]],
                                                                            list[tuple[str, str]]]:
    try:
        branches = plan_branches(flow.graph)
    except ConfigError:
        return {}, []  # branch_problems says why
    windows = branch_windows(root, flow, components)
    keys: dict[str, list[str]] = {}
    problems: list[tuple[str, str]] = []
    for sink, idx in fed_by(branches).items():
        if len(idx) < 2:
            continue
        found = {i: branch_key(branches[i], windows[i][1].type, components) for i in idx}
        raw = [branches[i].name for i, k in found.items() if k is ROWS]
        if raw:
            problems.append((KEY, f"sink {sink!r} is fed by several branches, and {raw[0]!r}'s rows have no key "
                                  "(not an aggregate's): the sink upserts each branch's windows by (window_start, "
                                  "branch, key); give that branch a sink of its own"))
            continue
        distinct = list(dict.fromkeys(found.values()))
        if len(distinct) > 1:
            said = ", ".join(f"{branches[i].name!r} by {k or 'nothing'}" for i, k in found.items())
            problems.append((KEY, f"sink {sink!r} is fed by branches keyed apart ({said}): the sink upserts by "
                                  "(window_start, branch, key), so they must share their key"))
            continue
        names = [branches[i].name for i in idx]
        if len(set(names)) < len(names):
            problems.append((KEY, f"sink {sink!r} is fed twice by branches named {names[0]!r}"))
            continue
        keys[sink] = [BRANCH_FIELD, *([str(distinct[0])] if distinct[0] is not None else [])]
    return keys, problems
