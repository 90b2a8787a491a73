"""Cross-check of a sink's `asset = "URI"` at load: its events run the DAGs of this daemon, so the
config must run DAGs (`[dags] path`); an asset no DAG is scheduled on is fine (Airflow keeps an event
nobody consumes), and said at start by the daemon's log."""

from __future__ import annotations

from rtstream.config.models import RootConfig
from rtstream.config.settings import ComponentSettings


def asset_sink_problems(root: RootConfig, sinks: list[str],
                        components: dict[str, ComponentSettings]) -> list[tuple[str, str]]:
    if root.dags is not None:
        return []
    return [(f"sinks.{n}.asset", "an asset's events run the DAGs of this daemon: add [dags] path = \"...\" "
                                 "(or remove asset)")
            for n in sinks if getattr(components[n].config, "asset", None) is not None]
