"""Per-key state outside windows: `fn(state, record) -> (state, outputs)`, one state per key and partition.

The state of a key lives with the partition its records come from (a keyed topic puts a key in one
partition), so it is checkpointed, restored and dropped with that partition like its windows. Every
record it takes holds the partition's commit until a saved checkpoint covers it: without
checkpoints nothing is committed past the state's first record, and a restart rebuilds the state by
replaying (rtstream.engine.stateful).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

from rtstream.engine.stateful import StatefulStep, scalar_key, size_of
from rtstream.model.positions import PartitionKey

StateFn = Callable[[Any, dict[str, Any]], Any]


class KeyedState(StatefulStep):
    def __init__(self, name: str, key: str, fn: StateFn, ttl_ms: int | None, max_keys: int):
        super().__init__(name)
        self.key = key
        self.fn = fn
        self.ttl_ms = ttl_ms
        self.max_keys = max_keys
        self.states: dict[PartitionKey, dict[Any, tuple[Any, int]]] = {}  # pk -> key -> (state, last time)
        self.first_unsaved: dict[PartitionKey, int] = {}  # the first offset no saved checkpoint covers
        self._expiry: list[tuple[int, PartitionKey, Any]] = []
        self.keys = 0

    def at(self, pk: PartitionKey, rec: Any, value: dict[str, Any]) -> list[dict[str, Any]]:
        key = scalar_key(value, self.key)
        states = self.states.get(pk)
        if states is None:
            states = self.states[pk] = {}
        entry = states.get(key)
        if entry is None and self.keys >= self.max_keys:
            raise ValueError(f"the stage already keeps max_keys = {self.max_keys} keys")
        ts = self.time_of(rec, value) if self.ttl_ms is not None else 0
        result = self.fn(None if entry is None else entry[0], value)
        # checked before anything changes: a function that breaks its contract leaves the state as it was
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError(f"returned {type(result).__name__}; expected a tuple (state, outputs)")
        state, outputs = result
        if outputs is None:
            outputs = []
        elif isinstance(outputs, dict):
            outputs = [outputs]
        elif not (isinstance(outputs, list) and all(isinstance(o, dict) for o in outputs)):
            raise TypeError("returned outputs that are not a list of objects (dicts)")
        if state is None:
            if entry is not None:
                del states[key]
                self.keys -= 1
        else:
            if entry is None:
                self.keys += 1
            states[key] = (state, ts)
            if self.ttl_ms is not None:
                heapq.heappush(self._expiry, (ts + self.ttl_ms, pk, key))
        if self.first_unsaved.get(pk, -1) < self._saved.get(pk, -1) or pk not in self.first_unsaved:
            self.first_unsaved[pk] = rec.offset
        self.kept(pk, rec.offset)
        return outputs  # type: ignore[no-any-return]

    def evict_before(self, watermark: int) -> None:
        exp = self._expiry
        while exp and exp[0][0] < watermark:
            _, pk, key = heapq.heappop(exp)
            entry = self.states.get(pk, {}).get(key)
            if entry is not None and entry[1] + self.ttl_ms < watermark:  # type: ignore[operator]
                del self.states[pk][key]
                self.keys -= 1

    def lowest(self, pk: PartitionKey, floor: int) -> int | None:
        first = self.first_unsaved.get(pk)
        return first if first is not None and first >= floor else None

    def snapshot(self, pk: PartitionKey) -> Any:
        return dict(self.states.get(pk, {}))

    def restore(self, pk: PartitionKey, state: Any) -> None:
        self.drop(pk)
        self.states[pk] = dict(state)
        self.keys += len(state)
        if self.ttl_ms is not None:
            for key, (_, ts) in state.items():
                heapq.heappush(self._expiry, (ts + self.ttl_ms, pk, key))

    def drop(self, pk: PartitionKey) -> None:
        self.keys -= len(self.states.pop(pk, {}))
        self.first_unsaved.pop(pk, None)

    def figures(self) -> tuple[int, int, int]:
        return self.keys, self.keys, sum(size_of(s) for states in self.states.values() for s, _ in states.values())
