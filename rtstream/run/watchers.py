"""The pipelines rtstream builds for Kafka `AssetWatcher`s of DAG files: one per watcher, beside the DAGs.

A DAG scheduled on an `Asset(..., watchers=[AssetWatcher(name, trigger=<a Kafka trigger>)])`
(rtstream.airflow.watchers) gets, per watcher, a pipeline of its own: rtstream's Kafka source on the
trigger's topics in the consumer group `rtstream.<dag_id>.<watcher>` (raw messages; a group with no
commit starts at the earliest offset, whatever the connection's `auto.offset.reset`), tumbling windows of `[dags] watcher_window` (default: the trigger's `poll_interval`, 5 s) by
the messages' Kafka timestamps, and the `asset_watcher` sink: one run of the DAG per window (those
messages in `dag_run.conf["rows"]` and in `triggering_asset_events`), its offsets committed only once
that run succeeded (the `dag` sink's rule: a failed run holds them and is retried, never run twice).
Its state is under STATE_DIR/watchers/<dag_id>.<watcher>.

Only a DAG scheduled on the watched asset alone is run this way; a watched asset combined with other
assets (`&`, `|`, a list of several) is refused with the reason, as is a watcher rtstream cannot run
(not Kafka, no apply_function ...): the DAG is then not scheduled, and the others run on.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtstream.airflow.asset_schedule import condition_of
from rtstream.airflow.assets import AssetAll, AssetAny
from rtstream.airflow.watchers import KafkaWatch, WatcherRefused, kafka_watch, trigger_events, watched_assets
from rtstream.config.dags import DagsSettings
from rtstream.config.load import load_settings
from rtstream.config.settings import Settings
from rtstream.model.errors import ConfigError

log = logging.getLogger("rtstream.dags")
_CONSUMER_KEYS = {"session.timeout.ms": "session_timeout_ms", "heartbeat.interval.ms": "heartbeat_interval_ms",
                  "max.poll.interval.ms": "max_poll_interval_ms"}  # from the Airflow connection's extra


@dataclass
class WatcherPipeline:
    dag_id: str
    asset: Any  # the watched Asset
    watch: KafkaWatch
    settings: Settings


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:120]


def _alone(dag: Any, asset: Any) -> bool:
    """The DAG is scheduled on the watched asset and nothing else."""
    cond = condition_of(dag)
    while isinstance(cond, (AssetAll, AssetAny)) and len(cond.objects) == 1:
        cond = cond.objects[0]
    return cond is asset or cond == asset


def _doc(dag_id: str, watch: KafkaWatch, dags: DagsSettings) -> dict[str, Any]:
    from rtstream.airflow.watchers import _connection_extra

    window = dags.watcher_window or watch.poll_interval
    state = Path(dags.daemon.state_dir) / "watchers" / _safe(f"{dag_id}.{watch.watcher}")
    consumer = {k2: v for k, k2 in _CONSUMER_KEYS.items() if isinstance(v := _connection_extra("kafka_default").get(k),
                                                                            int)}
    return {
        "pipeline": {"name": f"asset_watcher:{watch.watcher}", "flow": "messages >> to_dag"},
        # by the messages' Kafka timestamps: a replay after a kill closes the same windows
        "window": {"size": f"{window}s", "time": "source", "lateness": "2s", "idle_timeout": f"{max(window, 1.0)}s"},
        "sources": {"messages": {"type": "kafka", "bootstrap_servers": watch.bootstrap_servers, "topics": watch.topics,
                                 "group_id": f"rtstream.{dag_id}.{watch.watcher}", "format": "raw",
                                 "start": "committed", "consumer": consumer}},
        "sinks": {"to_dag": {"type": "asset_watcher", "dag": dag_id, "watcher": watch.watcher,
                             "retry_delay": "1s", "max_retry_delay": "30s"}},
        "daemon": {"state_dir": str(state), "shutdown_grace": f"{dags.daemon.shutdown_grace}s",
                   "log_level": dags.daemon.log_level, "log_format": dags.daemon.log_format, "commit_interval": "1s"},
    }


def plan(found: list[Any], not_scheduled: list[dict[str, str]], dags: DagsSettings) -> tuple[list[Any],
                                                                                          list[WatcherPipeline]]:
    """(the DAGs to schedule, the watchers' pipelines); a DAG whose watchers cannot run is logged, left out
    and listed in `not_scheduled`."""
    keep, pipelines = [], []
    for dag in found:
        assets = watched_assets(dag)
        if not assets:
            keep.append(dag)
            continue
        try:
            if len(assets) > 1 or not _alone(dag, assets[0]):
                raise WatcherRefused(f"schedule {dag.schedule!r}: rtstream runs a watched asset's DAG only when it is "
                                     "scheduled on that one asset (not combined with others)")
            mine = []
            for watcher in assets[0].watchers:
                watch = kafka_watch(watcher, getattr(dag, "fileloc", None))
                mine.append(WatcherPipeline(dag.dag_id, assets[0], watch,
                                            load_settings(doc=_doc(dag.dag_id, watch, dags), env={})))
        except (WatcherRefused, ConfigError) as exc:
            log.error("DAG %s not scheduled: %s", dag.dag_id, exc)
            not_scheduled.append({"dag_id": dag.dag_id, "reason": str(exc)})
            continue
        keep.append(dag)
        pipelines.extend(mine)
        for p in mine:
            log.info("DAG %s: asset watcher %s reads %s from %s (group rtstream.%s.%s), a run per %s window",
                     dag.dag_id, p.watch.watcher, ", ".join(p.watch.topics), p.watch.bootstrap_servers, dag.dag_id,
                     p.watch.watcher, p.settings.root.window.size and f"{p.settings.root.window.size:g}s")
    return keep, pipelines


class Watching:
    """The watchers' runtimes, started beside the DAG scheduler and stopped with it."""

    def __init__(self, pipelines: list[WatcherPipeline], trigger: Any, scheduler: Any):
        from rtstream.runtime.supervisor import Runtime

        self.runtimes = []
        for p in pipelines:
            asset = p.asset
            # a window run's triggering_asset_events: its messages' events, read from its conf
            scheduler.reads.events_of_run[p.dag_id] = (
                lambda run_id, a=asset, dag_id=p.dag_id: trigger_events(a, scheduler.run_conf(dag_id, run_id))
                if run_id.startswith("window__") else [])
            runtime = Runtime(p.settings)
            runtime.context.dags = trigger
            runtime.context.extra["asset_watcher"] = p.watch
            self.runtimes.append(runtime)
        self.tasks: list[asyncio.Task[int]] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._guarded(r), name=f"watcher {r.settings.root.pipeline.name}")
                      for r in self.runtimes]

    @staticmethod
    async def _guarded(runtime: Any) -> int:
        try:
            code = int(await runtime.run())
        except Exception:  # noqa: BLE001 - one watcher failing never stops the DAGs or the other watchers
            log.exception("%s stopped", runtime.settings.root.pipeline.name)
            return 1
        if not runtime.stop_requested.is_set():
            log.error("%s ended on its own (exit %d); its DAG gets no further runs until a restart",
                      runtime.settings.root.pipeline.name, code)
        return code

    def stop(self) -> None:
        for r in self.runtimes:
            r.stop()

    async def wait(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
