"""Cross-check of a sink's `asset = "URI"` at load: its events run the DAGs of this daemon, so the
config must run DAGs (`[dags] path`); an asset no DAG is scheduled on is fine (Airflow keeps an event
nobody consumes). An exactly_once Kafka sink cannot announce one: refused."""

from __future__ import annotations

from rtstream.config.models import RootConfig
from rtstream.config.settings import ComponentSettings


def asset_sink_problems(root: RootConfig, sinks: list[str],
                        components: dict[str, ComponentSettings]) -> list[tuple[str, str]]:
    problems = []
    for n in sinks:
        cfg = components[n].config
        if getattr(cfg, "asset", None) is None:
            continue
        if root.dags is None:
            problems.append((f"sinks.{n}.asset", "an asset's events run the DAGs of this daemon: add [dags] path = "
                                                 "\"...\" (or remove asset)"))
        if getattr(cfg, "exactly_once", False):
            # the transaction commits the offsets with the rows: an event kept after it could be lost to a
            # kill, one kept before it could announce rows that never land
            problems.append((f"sinks.{n}.asset", "cannot be announced with an exactly_once sink (its transaction "
                                                 "commits the offsets with the rows, so a kill between them would "
                                                 "lose the event): use exactly_once = false, or another sink"))
    return problems
