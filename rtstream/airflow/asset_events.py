"""The context's `outlet_events` and `inlet_events`, and a generator task's yielded `Metadata`
(Airflow's OutletEventAccessors, InletEventsAccessors and ExecutionCallableRunner)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any

from rtstream.airflow.assets import DatasetAlias, Metadata, event_key

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


class InletEventsAccessors:
    """`inlet_events[asset]`: the events of that asset so far, oldest first. rtstream keeps no asset
    events between runs, so each is an empty sequence."""

    def __init__(self, inlets: list[Any] | None = None):
        self.inlets = list(inlets or [])

    def __getitem__(self, key: Any) -> list[Any]:
        if isinstance(key, int):
            key = self.inlets[key]
        return []

    def for_asset(self, *, name: str | None = None, uri: str | None = None) -> list[Any]:
        return []

    def for_asset_alias(self, *, name: str) -> list[Any]:
        return []

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
