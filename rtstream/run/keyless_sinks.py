"""Table sinks that `workers = N` would make lose rows, found before any worker starts.

A table sink (sqlite, postgres) replaces a window's rows whole when they have no key (a join's
pairs, a keyed or python stage's outputs, raw records: rtstream.sinks.row_keys). Each worker folds
only its share of the partitions, so each would write its own part of a window and delete the
others'. A file sink does the same with a window's file (it merges the workers' rows only by a key).
Such a config is refused (exit 2) with what to set instead; rows with a key (an aggregate's `key`, a
session's `key`, `key_columns`) are upserted by it and the workers' parts add up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rtstream.config.branches import Branch, plan_branches
from rtstream.config.shared_sinks import ROWS, branch_key
from rtstream.config.stage_window import branch_windows

if TYPE_CHECKING:
    from rtstream.config.settings import Settings

TABLE_SINKS = ("sqlite", "postgres")


def keyless_table_sinks(settings: Settings) -> list[str]:
    """The sinks whose rows have no key and that replace each window's rows: table sinks (upsert, no
    key_columns) and file sinks."""
    flow, components = settings.flow, settings.components
    windows = branch_windows(settings.root, flow, components)
    if flow.branched:
        branches = plan_branches(flow.graph)
    else:
        branches = [Branch(list(flow.sources), list(flow.stages), list(flow.sinks))]
    out = []
    for branch, (_, window) in zip(branches, windows, strict=True):
        if branch_key(branch, window.type, components) is not ROWS:
            continue
        for name in branch.sinks:
            cfg: Any = components[name].config
            replaces = (cfg.type == "file" and cfg.mode == "replace") or (
                cfg.type in TABLE_SINKS and cfg.mode == "upsert" and not cfg.key_columns)
            if replaces and name not in out:
                out.append(name)
    return out


def keyless_problem(settings: Settings) -> str | None:
    names = keyless_table_sinks(settings)
    if not names:
        return None
    files = [n for n in names if getattr(settings.components[n].config, "type", None) == "file"]
    fix = ("give the sink key_columns unique per row, or mode = \"insert\" (a replay then appends again), "
           "or run one worker") if not files else (
           f"a file sink ({', '.join(files)}) keeps one window's file per folder: give it mode = \"append\" (a "
           "replay then appends again), or write these rows to a table sink with key_columns or to Kafka, or run "
           "one worker")
    return (f"daemon.workers = {settings.root.daemon.workers}: the rows of sink(s) {', '.join(names)} have no key, "
            f"so each window's rows are replaced whole, and each worker writes only its share of a window (one "
            f"would delete another's); {fix}")
