"""What a join asks of the rest of the config.

A window join's `left_fields` / `right_fields` name fields of that side's rows: where the side's
source knows its rows' fields (`row_fields`: the nexmark source), a name it lacks is refused, since
a typo would otherwise be a column of nulls. Other sources' rows are known only as they come.

An interval join's `how = "left"` (rtstream.engine.outer_rows):

A left row goes out alone only if it never found a partner, and that is known only from the join's
state: a restart must restore it from a checkpoint (replaying from a commit, a partner already
committed would not be read again, and the row would go out alone as well), so the pipeline needs
`state.checkpoint_interval`. The row lands in its own time window, which waits `upper` longer to
close: tumbling or hopping windows (sessions move as they grow; count windows do not wait for time).
"""

from __future__ import annotations

from typing import Any

from rtstream.config.flow import Flow
from rtstream.config.models import RootConfig
from rtstream.config.stage_window import branch_windows


def outer_join_problems(root: RootConfig, flow: Flow, components: dict[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for stages, window in branch_windows(root, flow, components):
        for name in stages:
            cfg = components[name].config
            if getattr(cfg, "type", None) != "interval_join" or getattr(cfg, "how", "inner") != "left":
                continue
            if root.state.checkpoint_interval is None:
                problems.append((f"stages.{name}.how", '"left" needs state.checkpoint_interval (e.g. "10s"): '
                                 "whether a left row found a partner is kept in the checkpoint, so a restart "
                                 "never sends a matched row out alone"))
            if window.type in ("session", "count"):
                problems.append((f"stages.{name}.how", f'"left" needs tumbling or hopping windows, not '
                                 f"{window.type} windows: an unmatched left row goes out in its own time's window"))
    return list(dict.fromkeys(problems))


def join_field_problems(flow: Flow, components: dict[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for name in flow.stages:
        cfg = getattr(components.get(name), "config", None)
        if getattr(cfg, "type", None) != "join":
            continue
        for side in ("left", "right"):
            fields, source = getattr(cfg, f"{side}_fields", None), getattr(cfg, side)
            known_of = getattr(getattr(components.get(source), "config", None), "row_fields", None)
            if not fields or known_of is None:
                continue
            known = known_of()
            unknown = [f for f in fields if f not in known]
            if unknown:
                problems.append((f"stages.{name}.{side}_fields", f"{', '.join(map(repr, unknown))}: no such field in the "
                                 f"rows of {source!r} (they have {', '.join(sorted(known))})"))
    return problems
