"""Prometheus metrics, read from the runtime's own counters at scrape time (nothing on the hot path)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from rtstream.model.status import CounterView
    from rtstream.model.window import Window


class Metrics:
    """The histograms the flusher observes once per window, and the collector of everything else."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.flush_seconds = Histogram("rtstream_window_flush_seconds", "Time to run a closed window's stages and sinks",
                                       buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
                                       registry=self.registry)
        self.window_records = Histogram("rtstream_window_records", "Input records per flushed window",
                                        buckets=(0, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000),
                                        registry=self.registry)

    def window_flushed(self, window: Window, seconds: float) -> None:
        """The runtime's observer call (rtstream.runtime.observers), once per final window."""
        self.flush_seconds.observe(seconds)
        self.window_records.observe(window.input_count)

    def attach(self, view: CounterView) -> None:
        self.registry.register(_RuntimeCollector(view))


class _RuntimeCollector(Collector):
    def __init__(self, view: CounterView):
        self.view = view

    def describe(self) -> list[Any]:
        return []  # metric names are only known at scrape time

    def collect(self) -> Iterator[Any]:
        c = self.view.counters()
        yield _family(CounterMetricFamily, "rtstream_records_in", "Records read, per source", ["source"],
                      [((name,), n) for name, n in c["records_in"].items()])
        yield _family(CounterMetricFamily, "rtstream_rows_out", "Rows written, per sink", ["sink"],
                      [((name,), n) for name, n in c["rows_by_sink"].items()])
        yield _family(CounterMetricFamily, "rtstream_dead_letters", "Records dead-lettered, per component and reason",
                      ["component", "reason"],
                      [((comp or "", reason), n) for (comp, reason), n in c["dead_letters_by_reason"].items()])
        yield _family(CounterMetricFamily, "rtstream_windows_flushed", "Windows written to every sink", [],
                      [((), c["windows_flushed"])])
        yield _family(CounterMetricFamily, "rtstream_retries", "Failed attempts that were retried, per component",
                      ["component"], [((comp,), n) for comp, n in c["retries_by"].items()])
        yield _family(CounterMetricFamily, "rtstream_failures", "Final failures (window dead-lettered), per component",
                      ["component"], [((comp,), n) for comp, n in c["failures"].items()])
        yield _family(GaugeMetricFamily, "rtstream_queue_depth", "Items waiting between the loops", ["queue"],
                      [((name,), n) for name, n in c["queue_depth"].items()])
        yield _family(GaugeMetricFamily, "rtstream_open_windows", "Windows open in memory", [],
                      [((), c["open_windows"])])
        wm = c["watermark_ms"]
        if wm > 0:
            yield _family(GaugeMetricFamily, "rtstream_watermark_seconds", "Pipeline event-time watermark, epoch seconds",
                          [], [((), wm / 1000)])
            yield _family(GaugeMetricFamily, "rtstream_watermark_lag_seconds", "Wall clock minus the watermark", [],
                          [((), time.time() - wm / 1000)])
        gauges = list(self.view.source_gauges())
        yield _family(GaugeMetricFamily, "rtstream_kafka_consumer_lag", "Records behind the partition's end",
                      ["source", "topic", "partition"],
                      [((name, topic, str(part)), lag) for name, lags, _ in gauges for (topic, part), lag in lags.items()])
        yield _family(GaugeMetricFamily, "rtstream_spool_bytes", "Spooled bytes not yet written by every sink",
                      ["source"], [((name,), pending) for name, _, pending in gauges if pending is not None])
        cp = c["checkpoints"]
        if cp is not None:
            yield _family(CounterMetricFamily, "rtstream_checkpoints", "Checkpoints saved", [], [((), cp["saved"])])
            yield _family(GaugeMetricFamily, "rtstream_checkpoint_bytes", "Size of the last checkpoint", [],
                          [((), cp["bytes"])])
            if cp["at"] is not None:
                yield _family(GaugeMetricFamily, "rtstream_checkpoint_age_seconds", "Seconds since the last checkpoint",
                              [], [((), time.time() - cp["at"])])
        lookups = c["lookups"]
        yield _family(CounterMetricFamily, "rtstream_lookup_cache_hits", "Records a lookup stage answered from its cache",
                      ["stage"], [((name,), v[0]) for name, v in lookups.items()])
        yield _family(CounterMetricFamily, "rtstream_lookup_cache_misses", "Records whose key a lookup stage had to fetch",
                      ["stage"], [((name,), v[1]) for name, v in lookups.items()])
        yield _family(CounterMetricFamily, "rtstream_lookup_fetches", "Batched fetches a lookup stage made",
                      ["stage"], [((name,), v[2]) for name, v in lookups.items()])
        yield _family(CounterMetricFamily, "rtstream_lookup_seconds", "Time spent in a lookup stage's fetches",
                      ["stage"], [((name,), v[3]) for name, v in lookups.items()])
        state = c.get("state", {})  # joins and keyed stages (rtstream.engine.stateful)
        for i, (metric, what) in enumerate((("rows", "Rows"), ("keys", "Keys"), ("bytes", "Estimated bytes"))):
            yield _family(GaugeMetricFamily, f"rtstream_state_{metric}", f"{what} a join or keyed stage keeps",
                          ["stage"], [((name,), v[i]) for name, v in state.items()])
        yield _family(GaugeMetricFamily, "rtstream_sink_halted", "1 while a sink's writes are failing and being retried",
                      ["sink"], [((name,), 1 if halted else 0) for name, halted in c["halted"].items()])


def _family(kind: Any, name: str, help_text: str, labels: list[str], samples: Iterable[tuple[tuple[str, ...], float]]) -> Any:
    """One metric family from (label values, value) pairs."""
    family = kind(name, help_text, labels=labels)
    for values, value in samples:
        family.add_metric(list(values), value)
    return family
