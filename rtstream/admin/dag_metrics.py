"""Prometheus metrics per DAG and task, read from the run store at scrape time (as Airflow's
`dagrun.*` and `dag.<dag_id>.<task_id>.duration`): runs by state, task instances by state, and a
histogram of finished tries' durations per task."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from rtstream.model.dag_status import DagsView


class DagCollector(Collector):
    def __init__(self, view: DagsView):
        self.view = view

    def describe(self) -> list[Any]:
        return []  # DAG and task names are only known at scrape time

    def collect(self) -> Iterator[Any]:
        c = self.view.counts()
        runs = GaugeMetricFamily("rtstream_dag_runs", "DAG runs kept, per DAG and state", labels=["dag_id", "state"])
        for (dag_id, state), n in sorted(c.runs.items()):
            runs.add_metric([dag_id, state], n)
        yield runs
        tis = GaugeMetricFamily("rtstream_dag_task_instances", "Task instances kept, per DAG, task and state "
                                "(none: not run yet)", labels=["dag_id", "task_id", "state"])
        for (dag_id, task_id, state), n in sorted(c.task_instances.items()):
            tis.add_metric([dag_id, task_id, state], n)
        yield tis
        hist = HistogramMetricFamily("rtstream_dag_task_duration_seconds", "Duration of each finished try of a task",
                                     labels=["dag_id", "task_id"])
        for (dag_id, task_id), (buckets, count, total) in sorted(c.durations.items()):
            hist.add_metric([dag_id, task_id], [(str(b), n) for b, n in buckets] + [("+Inf", count)], total)
        yield hist
