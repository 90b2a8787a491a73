"""The context's `outlet_events` and `inlet_events`, and a generator task's yielded `Metadata`
(Airflow's OutletEventAccessors, InletEventsAccessors and ExecutionCallableRunner)."""

from __future__ import annotations

import inspect
import logging
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from rtstream.airflow.assets import Dataset, DatasetAlias, Metadata, event_key

log = logging.getLogger("rtstream.airflow")


class OutletEventAccessor:
    """`outlet_events[asset]`: the event this try emits for that outlet (its extra, the assets added
    through an alias, the partition keys added at run time)."""

    def __init__(self, key: Any):
        self.key = key
        self.extra: dict[str, Any] = {}
        self.asset_alias_events: list[tuple[Any, dict[str, Any]]] = []
        self.partition_keys: list[str] = []

    def add(self, asset: Any, extra: dict[str, Any] | None = None) -> None:
        if isinstance(self.key, (DatasetAlias, str)):  # only an alias takes events (Airflow ignores the rest)
            self.asset_alias_events.append((asset, dict(extra or {})))

    def add_partitions(self, keys: str | list[str]) -> None:
        for key in [keys] if isinstance(keys, str) else list(keys):
            if key not in self.partition_keys:  # duplicate keys collapse to one event, as in Airflow
                self.partition_keys.append(key)


class OutletEventAccessors:
    def __init__(self) -> None:
        self._events: dict[Any, OutletEventAccessor] = {}

    def __getitem__(self, key: Any) -> OutletEventAccessor:
        found = self._events.get(event_key(key))
        if found is None:
            found = self._events[event_key(key)] = OutletEventAccessor(key)
        return found

    def __iter__(self) -> Iterator[Any]:
        return iter(self._events)

    def __len__(self) -> int:
        return len(self._events)


_OUTLET_EVENTS: weakref.WeakKeyDictionary[Any, OutletEventAccessors] = weakref.WeakKeyDictionary()


def outlet_events_of(ti: Any) -> OutletEventAccessors:
    """A fresh `outlet_events` for the try about to run, remembered for its task instance: what the try
    adds (extras, alias events) is what its success writes (rtstream.dags.asset_triggers)."""
    accessors = OutletEventAccessors()
    try:
        _OUTLET_EVENTS[ti] = accessors
    except TypeError:  # not weak-referenceable: nothing to remember it by
        pass
    return accessors


def outlet_events_kept(ti: Any) -> OutletEventAccessors | None:
    try:
        return _OUTLET_EVENTS.get(ti)
    except TypeError:
        return None


class InletEventsAccessors:
    """`inlet_events[asset]`: the events of that asset so far, oldest first. `reader(name, uri, alias)`
    reads them from the daemon's store; without one (`dags test`, which keeps no events) each is an
    empty sequence."""

    def __init__(self, inlets: list[Any] | None = None,
                 reader: Callable[[str | None, str | None, str | None], list[Any]] | None = None):
        self.inlets = list(inlets or [])
        self._reader = reader

    def _read(self, name: str | None = None, uri: str | None = None, alias: str | None = None) -> list[Any]:
        return self._reader(name, uri, alias) if self._reader is not None else []

    def __getitem__(self, key: Any) -> list[Any]:
        if isinstance(key, int):
            key = self.inlets[key]
        if isinstance(key, DatasetAlias):
            return self._read(alias=key.name)
        if isinstance(key, Dataset):
            return self._read(uri=key.uri)
        name, uri = getattr(key, "name", None), getattr(key, "uri", None)
        if isinstance(key, str):
            uri = key  # Airflow 2.10 takes a dataset's URI too
        return self._read(name=name, uri=uri) if name is not None or uri is not None else []

    def for_asset(self, *, name: str | None = None, uri: str | None = None) -> list[Any]:
        return self._read(name=name, uri=uri)

    def for_asset_alias(self, *, name: str) -> list[Any]:
        return self._read(alias=name)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.inlets)

    def __len__(self) -> int:
        return len(self.inlets)


def run_yielding(fn: Callable[..., Any], outlet_events: OutletEventAccessors | None, /, *args: Any,
                 **kwargs: Any) -> Any:
    """Airflow's ExecutionCallableRunner: a generator function's yielded `Metadata` go to its outlets'
    events (other yielded values are logged and ignored); the value it returns is the result."""
    if not inspect.isgeneratorfunction(fn):
        return fn(*args, **kwargs)
    gen = fn(*args, **kwargs)
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        if isinstance(item, Metadata) and outlet_events is not None:
            outlet_events[item.asset].extra.update(item.extra)
            if item.alias is not None:
                outlet_events[item.alias].add(item.asset, extra=item.extra)
        else:
            log.warning("Ignoring unknown data of %r received from task", type(item))
