"""Asset events read back from `dag_runs.db` for a run's context, and the extras a try writes.

- `consumed`: the events a dataset-triggered run consumed (table `asset_consumed`), oldest first: its
  `triggering_asset_events` / `triggering_dataset_events`.
- `reader`: `inlet_events[asset]`, every kept event of that asset oldest first (the newest
  `INLET_LIMIT` of them: memory stays bounded where Airflow pages through its database).
- `outlet_extras`: what a successful try put in `outlet_events[asset].extra` (or yielded as
  `Metadata`), as the JSON its events keep.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from rtstream.airflow.asset_event_values import AliasValue, AssetEventValue, AssetRefValue
from rtstream.airflow.asset_events import outlet_events_kept
from rtstream.airflow.asset_schedule import alias_outlets, asset_id
from rtstream.airflow.assets import event_key
from rtstream.dags.store import RunStore

INLET_LIMIT = 10_000
_COLUMNS = "e.seq, e.name, e.uri, e.source_dag_id, e.source_task_id, e.source_run_id, e.source_map_index, " \
           "e.timestamp, e.extra, e.source_aliases"


def outlet_extras(ti: Any) -> dict[tuple[str, str], str]:
    kept = outlet_events_kept(ti)
    if kept is None:
        return {}
    out = {}
    for outlet in getattr(ti.task, "outlets", []) or []:
        aid = asset_id(outlet)
        accessor = kept._events.get(event_key(outlet))
        if aid is not None and accessor is not None and accessor.extra:
            out[aid] = orjson.dumps(accessor.extra, default=str).decode()
    return out


def alias_events(ti: Any) -> list[tuple[tuple[str, str], str | None, str]]:
    """((name, uri), extra JSON, alias) of each `outlet_events[alias].add(asset, extra)` of the try, for
    the aliases among the task's outlets (as Airflow reads them)."""
    kept = outlet_events_kept(ti)
    if kept is None:
        return []
    out = []
    for alias in alias_outlets(ti.task):
        accessor = kept._events.get(("alias", alias)) or kept._events.get(alias)
        for asset, extra in accessor.asset_alias_events if accessor is not None else []:
            aid = asset_id(asset)
            if aid is not None:
                out.append((aid, orjson.dumps(extra, default=str).decode() if extra else None, alias))
    return out


def _event(row: tuple[Any, ...]) -> AssetEventValue:
    aliases = orjson.loads(row[9]) if row[9] else []
    return AssetEventValue(asset=AssetRefValue(row[1], row[2]), extra=orjson.loads(row[8]) if row[8] else {},
                           source_dag_id=row[3], source_task_id=row[4], source_run_id=row[5],
                           source_map_index=row[6], timestamp=datetime.fromisoformat(row[7]),
                           source_aliases=[AliasValue(a) for a in aliases], id=row[0])


class AssetReads:
    def __init__(self, store: RunStore):
        self.store = store
        # dag_id -> the triggering events of a run that consumed no kept event (an AssetWatcher's window
        # run: its messages' events, rtstream.run.watchers)
        self.events_of_run: dict[str, Callable[[str], list[AssetEventValue]]] = {}

    def consumed(self, dag_id: str, run_id: str) -> list[AssetEventValue]:
        rows = self.store.query(f"SELECT {_COLUMNS} FROM asset_consumed c JOIN asset_event e ON e.seq = c.seq "
                                "WHERE c.dag_id = ? AND c.run_id = ? ORDER BY e.seq", (dag_id, run_id))
        if not rows and dag_id in self.events_of_run:
            return self.events_of_run[dag_id](run_id)
        return [_event(r) for r in rows]

    def reader(self, name: str | None, uri: str | None, alias: str | None) -> list[AssetEventValue]:
        where: list[str] = []
        args: list[Any] = []
        if alias is not None:  # the events added through that alias
            where.append("EXISTS (SELECT 1 FROM json_each(e.source_aliases) WHERE json_each.value = ?)")
            args.append(alias)
        if name is not None:
            where.append("e.name = ?")
            args.append(name)
        if uri is not None:
            where.append("e.uri = ?")
            args.append(uri)
        if not where:
            return []
        rows = self.store.query(f"SELECT {_COLUMNS} FROM asset_event e WHERE {' AND '.join(where)} "
                                f"ORDER BY e.seq DESC LIMIT {INLET_LIMIT}", tuple(args))
        return [_event(r) for r in reversed(rows)]
