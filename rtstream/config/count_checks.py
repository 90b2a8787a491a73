"""What a count window (`[window] type = "count"`) asks of the rest of the config."""

from __future__ import annotations

from typing import Any

from rtstream.config.flow import Flow
from rtstream.config.models import RootConfig
from rtstream.config.stage_window import branch_windows


def count_window_problems(root: RootConfig, flow: Flow, components: dict[str, Any]) -> list[tuple[str, str]]:
    """A count window's place in its key's count is kept only in checkpoints, and its records are
    bounded like any window's."""
    problems = []
    for stages, w in branch_windows(root, flow, components):
        if w.type != "count" or w.records is None:
            continue
        if root.state.checkpoint_interval is None and not flow.branched:  # (branches ask for it themselves)
            problems.append(("state.checkpoint_interval", 'window.type = "count" needs it (e.g. "10s"): an '
                                                          "unfinished count window is restored from the "
                                                          "checkpoint, and the commit never passes the last one"))
        aggregated = any(getattr(components[n].config, "aggregates", None) for n in stages)
        if w.records > root.daemon.max_window_records and not aggregated:
            problems.append(("window.size", f"{w.records} records is more than daemon.max_window_records = "
                                            f"{root.daemon.max_window_records} a window may hold"))
    return problems
