"""Datasets (Airflow 2.10) and assets (Airflow 3's task SDK) as a DAG file uses them: in `schedule`
(a list, `a | b`, `a & b`, `DatasetOrTimeSchedule`), in a task's `inlets` / `outlets`, and through
the context's `outlet_events` / `inlet_events` and a yielded `Metadata`.

rtstream runs a DAG under `dags test` once, whatever its schedule (as `airflow dags test` does), and
keeps no asset events between runs: `inlet_events[...]` is an empty sequence, and what a task adds
to `outlet_events` is kept for that try only (asset_events.py). The `@asset` decorator is in
asset_decorator.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any


class BaseAsset:
    """Anything a schedule may combine: `a | b` is any of them, `a & b` all of them (Airflow's
    BaseAsset.__or__ / __and__, nested as Airflow nests them)."""

    def __or__(self, other: Any) -> AssetAny:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAny(self, other)

    def __and__(self, other: Any) -> AssetAll:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAll(self, other)

    def event_key(self) -> Any:
        """The key `outlet_events[...]` / `inlet_events[...]` file this under."""
        return self


class _Condition(BaseAsset):
    def __init__(self, *objects: Any):
        self.objects = list(objects)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.objects))})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.objects == other.objects  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]


class AssetAny(_Condition):
    pass


class AssetAll(_Condition):
    pass


DatasetAny, DatasetAll = AssetAny, AssetAll


class Dataset(BaseAsset):
    """Airflow 2's `Dataset(uri, extra=None)`: equal (and hashed) by its URI."""

    def __init__(self, uri: str, extra: dict[str, Any] | None = None):
        if not isinstance(uri, str) or not uri:
            raise ValueError(f"Dataset() needs a non-empty URI string, got {uri!r}")
        self.uri, self.extra = uri, extra

    def __repr__(self) -> str:
        return f"Dataset(uri={self.uri!r}, extra={self.extra!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dataset) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    def __fspath__(self) -> str:
        return self.uri

    def event_key(self) -> Any:
        return self.uri


class DatasetAlias(BaseAsset):
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.name == self.name  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.name))

    def event_key(self) -> Any:
        return self.name


class AssetAlias(DatasetAlias):
    """Airflow 3's `AssetAlias(name, group="asset")`."""

    def __init__(self, name: str, group: str = "asset"):
        super().__init__(name)
        self.group = group

    def event_key(self) -> Any:
        return ("alias", self.name)


class Asset(BaseAsset):
    """Airflow 3's `Asset(name=None, uri=None, *, group, extra, watchers)`: a missing name is the URI and
    a missing URI the name; equal (and hashed) by name and URI, as AssetUniqueKey is."""

    asset_type = "asset"

    def __init__(self, name: str | None = None, uri: Any = None, *, group: str | None = None,
                 extra: dict[str, Any] | None = None, watchers: list[Any] | None = None, **_: Any):
        if name is None and uri is None:
            raise TypeError("Asset() requires either 'name' or 'uri'")
        self.name = str(name if name is not None else uri)
        self.uri = str(uri if uri is not None else name)
        self.group = group or self.asset_type
        self.extra, self.watchers = dict(extra or {}), list(watchers or [])

    def __repr__(self) -> str:
        return f"Asset(name={self.name!r}, uri={self.uri!r}, group={self.group!r}, extra={self.extra!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Asset) and (other.name, other.uri) == (self.name, self.uri)

    def __hash__(self) -> int:
        return hash((self.name, self.uri))

    def event_key(self) -> Any:
        return ("asset", self.name)

    @staticmethod
    def ref(*, name: str | None = None, uri: str | None = None) -> AssetRef:
        if (name is None) == (uri is None):
            raise TypeError("Asset.ref() takes exactly one of 'name' or 'uri'")
        return AssetRef(name, uri)


class AssetRef(BaseAsset):
    """`Asset.ref(name=...)` / `Asset.ref(uri=...)`: an asset defined elsewhere, found by name or URI."""

    def __init__(self, name: str | None, uri: str | None):
        self.name, self.uri = name, uri

    def __repr__(self) -> str:
        return f"AssetRef(name={self.name!r})" if self.name is not None else f"AssetRef(uri={self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AssetRef) and (other.name, other.uri) == (self.name, self.uri)

    def __hash__(self) -> int:
        return hash(("ref", self.name, self.uri))

    def event_key(self) -> Any:
        return ("asset", self.name) if self.name is not None else ("uri", self.uri)


class Metadata:
    """What a task may yield to give an outlet's event its extra (and an alias the event goes through)."""

    def __init__(self, asset: Any, extra: dict[str, Any], alias: Any = None):
        self.asset, self.extra, self.alias = asset, dict(extra), alias


def event_key(obj: Any) -> Any:
    return obj.event_key() if isinstance(obj, BaseAsset) else obj


class StandInTimetable:
    """A timetable given as a schedule. Under `dags test` only its manual data interval matters."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.args, self.kwargs = args, kwargs

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def infer_manual_data_interval(self, *, run_after: datetime) -> tuple[datetime, datetime]:
        return run_after, run_after


class AssetTriggeredTimetable(StandInTimetable):
    pass


class CronTriggerTimetable(StandInTimetable):
    """Runs at each cron point; a manual run's interval is [run_after - interval, run_after]."""

    def __init__(self, cron: str, *, timezone: Any = None, interval: timedelta = timedelta(), **kwargs: Any):
        super().__init__(cron, timezone=timezone, interval=interval, **kwargs)
        self.interval = interval if isinstance(interval, timedelta) else timedelta()

    def infer_manual_data_interval(self, *, run_after: datetime) -> tuple[datetime, datetime]:
        return run_after - self.interval, run_after


class AssetOrTimeSchedule(StandInTimetable):
    """Assets or a timetable, whichever comes first: a manual run's interval is the timetable's."""

    def __init__(self, *, timetable: Any, assets: Any = None, datasets: Any = None, **kwargs: Any):
        super().__init__(timetable=timetable, assets=assets if assets is not None else datasets, **kwargs)
        self.timetable = timetable

    def infer_manual_data_interval(self, *, run_after: datetime) -> tuple[datetime, datetime]:
        if hasattr(self.timetable, "infer_manual_data_interval"):
            return self.timetable.infer_manual_data_interval(run_after=run_after)  # type: ignore[no-any-return]
        return run_after, run_after


DatasetOrTimeSchedule = AssetOrTimeSchedule


NAMES: dict[str, Any] = {
    "Dataset": Dataset, "DatasetAlias": DatasetAlias, "DatasetAll": DatasetAll, "DatasetAny": DatasetAny,
    "Asset": Asset, "AssetAlias": AssetAlias, "AssetAll": AssetAll, "AssetAny": AssetAny, "AssetRef": AssetRef,
    "BaseAsset": BaseAsset, "BaseDataset": BaseAsset, "Metadata": Metadata,
    "AssetOrTimeSchedule": AssetOrTimeSchedule, "DatasetOrTimeSchedule": DatasetOrTimeSchedule,
    "CronTriggerTimetable": CronTriggerTimetable, "DatasetTriggeredTimetable": AssetTriggeredTimetable,
    "AssetTriggeredTimetable": AssetTriggeredTimetable,
    # Airflow 3.2's partitioned schedules: a run under `dags test` has no partition key
    "CronPartitionTimetable": CronTriggerTimetable, "PartitionedAssetTimetable": AssetTriggeredTimetable,
    "PartitionedAtRuntime": AssetTriggeredTimetable,
}
