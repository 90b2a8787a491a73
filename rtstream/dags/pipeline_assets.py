"""A pipeline sink's `asset = "URI"`: each window the sink has written is an event of that asset, and the
daemon's DAGs scheduled on it are queued, as a task's outlet does (rtstream.dags.asset_triggers).

The event is kept in `asset_event` with the window's bounds as its data interval and, as its source,
the pipeline (`source_dag_id`), the sink (`source_task_id`) and the window (`source_run_id`
`window__<start>__<end>`, a per-key window's key digest after it; map index -1, try 0), so
(pipeline, sink, window) is its key: a window replayed after a kill (written again before its
positions were committed) is announced again and makes no second event, no second run. Its extra is
`{"pipeline", "sink", "window_start", "window_end", "rows"}`.

The asset's name is the name a DAG of the daemon gives that URI (`Asset(name=..., uri=...)`, in a
schedule or an outlet), else the URI itself (as `Asset(uri)` names it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from rtstream.airflow.assets import Asset, AssetOrTimeSchedule, BaseAsset
from rtstream.dags.asset_triggers import AssetTriggers, _ts
from rtstream.dags.scheduler import DagScheduler
from rtstream.dags.store import RunStore
from rtstream.dags.window_runs import WindowRuns
from rtstream.model.window import iso_utc

log = logging.getLogger("rtstream.dags")


def _leaves(obj: Any) -> Iterator[Any]:
    if isinstance(obj, AssetOrTimeSchedule):
        obj = obj.kwargs.get("assets")
    if isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _leaves(o)
    elif isinstance(obj, BaseAsset) and hasattr(obj, "objects"):
        for o in obj.objects:
            yield from _leaves(o)
    elif obj is not None:
        yield obj


def asset_names(dags: list[Any]) -> dict[str, str]:
    """URI -> the name the DAGs give the asset of that URI (schedules and task outlets)."""
    names: dict[str, str] = {}
    for dag in dags:
        found = list(_leaves(dag.schedule))
        for task in getattr(dag, "task_dict", {}).values():
            found.extend(getattr(task, "outlets", []) or [])
            found.extend(getattr(task, "inlets", []) or [])
        for a in found:
            if isinstance(a, Asset):
                names.setdefault(a.uri, a.name)
    return names


def _iso(dt: datetime) -> str:
    return iso_utc(int(dt.timestamp() * 1000))


class PipelineAssets:
    def __init__(self, triggers: AssetTriggers, dags: list[Any], store: RunStore):
        self.triggers, self.store = triggers, store
        self.names = asset_names(dags)

    def written(self, uri: str, pipeline: str, sink: str, window: tuple[datetime, datetime],
                window_key: str | None, rows: int) -> bool:
        """Keep the window's event and queue its consumers, in one transaction; True when it is new."""
        name = self.names.get(uri, uri)
        start, end = _iso(window[0]), _iso(window[1])
        run_id = f"window__{start}__{end}" + (f"__{window_key}" if window_key else "")
        extra = {"pipeline": pipeline, "sink": sink, "window_start": start, "window_end": end, "rows": rows}
        now = datetime.now(UTC)
        queued: list[str] = []
        with self.store.transaction() as db:
            cur = db.execute("INSERT OR IGNORE INTO asset_event (name, uri, source_dag_id, source_run_id, "
                             "source_task_id, source_map_index, source_try, interval_start, interval_end, "
                             "timestamp, extra) VALUES (?, ?, ?, ?, ?, -1, 0, ?, ?, ?, ?)",
                             (name, uri, pipeline, run_id, sink, window[0].isoformat(), window[1].isoformat(),
                              _ts(now), orjson.dumps(extra).decode()))
            new = cur.rowcount > 0
            if new:
                queued = self.triggers.queue(db, name, uri, now)
        if queued:
            self.triggers.on_queued(sorted(set(queued)))
        if new:
            log.info("asset %s: event of %s's sink %s for window %s .. %s (%d rows)%s", uri, pipeline, sink,
                     start, end, rows, f"; queued {', '.join(sorted(set(queued)))}" if queued else "")
        return new


class DaemonDags(WindowRuns):
    """What the pipeline's components get as `context.dags`: the `dag` sink's window runs and every
    sink's asset events (rtstream.model.dag_trigger's `DagTrigger`)."""

    def __init__(self, scheduler: DagScheduler, store: RunStore):
        super().__init__(scheduler, store)
        self.assets = PipelineAssets(scheduler.assets, scheduler.dags, store)

    def asset_written(self, uri: str, pipeline: str, sink: str, window: tuple[datetime, datetime],
                      window_key: str | None, rows: int) -> bool:
        return self.assets.written(uri, pipeline, sink, window, window_key, rows)
