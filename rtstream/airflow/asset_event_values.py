"""The asset events a run's context hands its tasks, in Airflow's shapes (pure: the daemon reads them
from its store, rtstream.dags.asset_reads).

- `triggering_asset_events` (Airflow 3, `TriggeringAssetEventsAccessor`): a mapping keyed by `Asset`,
  `AssetAlias` or `Asset.ref(...)`, each key's events oldest first; iterating gives the assets (and
  the aliases the events came through).
- `triggering_dataset_events` (Airflow 2.10): a dict keyed by the dataset's URI, each a list of events.
- An event (`AssetEventDagRunReferenceResult` / 2.10's `DatasetEvent`): `asset` (name, uri, extra),
  `extra`, `source_dag_id`, `source_task_id`, `source_run_id`, `source_map_index`, `source_aliases`,
  `timestamp`, `partition_key`; 2.10's `dataset` and `uri` too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rtstream.airflow.assets import Asset, AssetAlias, AssetRef, Dataset, DatasetAlias


@dataclass(frozen=True)
class AssetRefValue:
    """The `asset` of an event: its name, URI and (Airflow 3) extra."""

    name: str
    uri: str
    extra: dict[str, Any] = field(default_factory=dict)
    group: str = "asset"


@dataclass(frozen=True)
class AliasValue:
    name: str


@dataclass(frozen=True)
class AssetEventValue:
    asset: AssetRefValue
    extra: dict[str, Any]
    source_dag_id: str | None
    source_task_id: str | None
    source_run_id: str | None
    source_map_index: int | None
    timestamp: datetime
    source_aliases: list[AliasValue] = field(default_factory=list)
    partition_key: str | None = None
    id: int = 0

    @property
    def dataset(self) -> AssetRefValue:  # Airflow 2.10's DatasetEvent.dataset
        return self.asset

    @property
    def uri(self) -> str:  # Airflow 2.10's DatasetEvent.uri
        return self.asset.uri


class TriggeringAssetEvents(Mapping[Any, Sequence[AssetEventValue]]):
    """Airflow 3's `TriggeringAssetEventsAccessor`."""

    def __init__(self, events: Sequence[AssetEventValue]):
        self._events: dict[tuple[str, ...], list[AssetEventValue]] = defaultdict(list)
        for e in events:
            self._events[("asset", e.asset.name, e.asset.uri)].append(e)
            for alias in e.source_aliases:
                self._events[("alias", alias.name)].append(e)

    def _key(self, key: Any) -> tuple[str, ...]:
        if isinstance(key, Asset):
            return ("asset", key.name, key.uri)
        if isinstance(key, Dataset):
            return ("asset", key.uri, key.uri)
        if isinstance(key, (AssetAlias, DatasetAlias)):
            return ("alias", key.name)
        if isinstance(key, AssetRef):  # resolved among the events' assets, as Airflow resolves a ref
            for k in self._events:
                if k[0] == "asset" and (k[1] == key.name if key.name is not None else k[2] == key.uri):
                    return k
            return ("ref", str(key.name), str(key.uri))
        raise TypeError(f"Key should be either an asset or an asset alias, not {type(key)}")

    def __getitem__(self, key: Any) -> Sequence[AssetEventValue]:
        return self._events.get(self._key(key), [])

    def __iter__(self) -> Iterator[Any]:
        return (Asset(name=k[1], uri=k[2]) if k[0] == "asset" else AssetAlias(k[1]) for k in list(self._events))

    def __len__(self) -> int:
        return len(self._events)

    def __repr__(self) -> str:
        return f"TriggeringAssetEventAccessor(_events={dict(self._events)})"


def triggering_dataset_events(events: Sequence[AssetEventValue]) -> dict[str, list[AssetEventValue]]:
    """Airflow 2.10's `triggering_dataset_events`: the events by dataset URI (a defaultdict)."""
    out: defaultdict[str, list[AssetEventValue]] = defaultdict(list)
    for e in events:
        out[e.asset.uri].append(e)
    return out
