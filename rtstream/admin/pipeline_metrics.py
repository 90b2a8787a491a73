"""The metrics of several pipelines in one registry: each pipeline's families, merged, with a `pipeline` label.

Every pipeline of a daemon keeps its own Metrics (rtstream.admin.metrics); at scrape time their
families are read and merged by name, so `/metrics` has one `rtstream_rows_out` with a series per
(pipeline, sink), as Prometheus expects of one exposition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample


class PipelinesCollector(Collector):
    def __init__(self, registries: Callable[[], list[tuple[str, CollectorRegistry]]]):
        self.registries = registries  # (pipeline name, its registry), read at each scrape

    def describe(self) -> list[Any]:
        return []  # the families are only known at scrape time

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for name, registry in self.registries():
            for family in registry.collect():
                out = merged.get(family.name)
                if out is None:
                    out = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                out.samples.extend(Sample(s.name, {"pipeline": name, **s.labels}, s.value, s.timestamp, s.exemplar)
                                   for s in family.samples)
        yield from merged.values()
