"""The sources on the two sides of each join, and what `workers = N` needs of them.

A join (`join`, `interval_join`, `table_join`) matches the rows one process reads, so with
`[daemon] workers = N` a key's rows of both sides must reach the same worker. Kafka Streams'
co-partitioning rule gives that: both topics partitioned alike by the key (same partition count,
producers using the same partitioner on the same key), and partition p of each read by the same
worker. Static sources follow it (rtstream.sources.kafka.static: worker p mod N for the topics named
here, decided once, by the supervisor, from the config). Group-mode sources cannot: each source's
consumer is assigned its partitions on its own, so they are refused before any worker starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rtstream.config.settings import Settings


def join_sides(settings: Settings) -> dict[str, tuple[str, str]]:
    """Each join stage of the flow -> the two sources it matches (load resolved a side naming its
    source's own stage to that source)."""
    from rtstream.stages.join import SidesConfig
    from rtstream.stages.table_join import TableJoinConfig

    out = {}
    for name in settings.flow.stages:
        cfg: Any = settings.components[name].config
        if isinstance(cfg, SidesConfig):
            out[name] = (cfg.left, cfg.right)
        elif isinstance(cfg, TableJoinConfig):
            out[name] = (cfg.stream, cfg.table)
    return out


def _kafka_sides(settings: Settings, assignment: str) -> dict[str, list[str]]:
    """Each join -> its sides that are Kafka sources with this `assignment`."""
    out: dict[str, list[str]] = {}
    for stage, sides in join_sides(settings).items():
        for source in dict.fromkeys(sides):
            cfg: Any = settings.components[source].config
            if getattr(cfg, "type", None) == "kafka" and cfg.assignment == assignment:
                out.setdefault(stage, []).append(source)
    return out


def co_partitioned_topics(settings: Settings) -> list[list[str]]:
    """The topics of each join's static Kafka sides: each list is read co-partitioned, and must be
    partitioned alike (one list a join, in flow order, without repeats)."""
    groups: list[list[str]] = []
    for sources in _kafka_sides(settings, "static").values():
        topics = list(dict.fromkeys(t for s in sources for t in settings.components[s].config.topics))  # type: ignore[attr-defined]
        if topics not in groups:
            groups.append(topics)
    return groups


def group_mode_problem(settings: Settings) -> str | None:
    """Why `workers = N` cannot run this flow's joins (a side read in group mode), or None."""
    found = _kafka_sides(settings, "group")
    if not found:
        return None
    said = "; ".join(f"join {stage!r}: {', '.join(sources)}" for stage, sources in found.items())
    return (f"daemon.workers = {settings.root.daemon.workers} with a join whose Kafka side reads in group mode "
            f"({said}): each source's consumer is assigned its partitions on its own, so a key's rows of the two "
            "sides land in different workers and the join silently misses its matches. Set assignment = \"static\" "
            "on every Kafka side of the join (partition p of each of its topics is then read by worker p mod N), "
            "or run workers = 1")
