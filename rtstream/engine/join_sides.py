"""A window join's rows wait in the pipeline's own windows: `SideTagger` marks each with its side
(`Sided`), bounds how many rows one side puts in one window, and keeps of a side's rows only the
fields the join's rows take (`left_fields` / `right_fields`). The pairing is rtstream.engine.join_rows'.
"""

from __future__ import annotations

from typing import Any

from rtstream.engine.join_keys import join_key
from rtstream.engine.join_rows import RowShape
from rtstream.engine.stateful import StatefulStep
from rtstream.model.positions import PartitionKey
from rtstream.where.predicates import Predicate

_Plan = tuple[str, int, str | None, tuple[str, ...] | None]  # see SideTagger._plan
_UNSEEN: Any = object()


class Sided(dict):  # type: ignore[type-arg]
    """A row of one side of a window join, waiting in its window (a dict, so every other part sees a row).
    No __init__ of its own (`Sided(value)`, then `.side`), so making one costs no Python call; a
    checkpoint pickled while it had one still loads (unpickling never called it)."""

    __slots__ = ("side",)
    side: str


class SideTagger(StatefulStep):
    """Marks each row of a window join with its side; rows beyond `max_rows` per window and side are refused.

    A side with `fields` (the join's `left_fields` / `right_fields`) waits in its windows with those
    fields alone, plus the key and time fields the join and the windows read."""

    def __init__(self, name: str, sides: dict[str, str], max_rows: int, keys: dict[str, str] | None = None,
                 shape: RowShape | None = None, fields: dict[str, list[str]] | None = None,
                 split: tuple[Predicate, Predicate] | None = None):
        super().__init__(name)
        self.side_of = sides  # source name -> "left" | "right" (one source: its rows split by `split`)
        self.key_of = keys or {}  # side -> its key field (rtstream.engine.join_keys)
        self.fields_of = fields or {}  # side -> the only fields its rows keep
        # one input of both sides (the join's left_where / right_where): a row goes to each side it
        # matches (both: it waits twice), to none: it passes through like a source that is no side
        self.split = split
        self._split_plans: tuple[_Plan, _Plan] | None = None
        # the join's row shape learns each side's fields as rows arrive, not only as windows close: a
        # window of left rows only then has the right side's fields too (rtstream.engine.join_rows)
        self.shape = shape
        self.sides = tuple(sides)
        self.max_rows = max_rows
        self.counts: dict[tuple[int, str], int] = {}  # (window start, side) -> rows over all partitions
        self.by_pk: dict[PartitionKey, dict[tuple[int, str], int]] = {}
        self._plans: dict[str, _Plan | None] = {}  # made at a source's first row, once the engine bound us

    def _side_plan(self, side: str) -> _Plan:
        """(side, its index, key field, the fields a row keeps or None for all) of a side's rows."""
        field = self.key_of.get(side)
        only = self.fields_of.get(side)
        keep = None if only is None else tuple(dict.fromkeys([*only, *([field] if field else []), self.time_field]))
        return (side, 0 if side == "left" else 1, field, keep)

    def _plan_split(self) -> tuple[_Plan, _Plan]:
        self._split_plans = (self._side_plan("left"), self._side_plan("right"))  # once the engine bound us
        return self._split_plans

    def _plan(self, source: str) -> _Plan | None:
        side = self.side_of.get(source)
        plan = None if side is None or self.split is not None else self._side_plan(side)
        self._plans[source] = plan
        return plan

    def at(self, pk: PartitionKey, rec: Any, value: dict[str, Any]) -> list[dict[str, Any]]:
        if self.split is not None and pk[0] in self.side_of:
            plans = self._split_plans or self._plan_split()
            out = [self._tag(pk, rec, value, plan) for plan, holds in zip(plans, self.split, strict=True)
                   if holds(value)]
            return out or [value]
        plan = self._plans.get(pk[0], _UNSEEN)
        if plan is _UNSEEN:
            plan = self._plan(pk[0])
        if plan is None:
            return [value]  # a source that is no side of this join passes through
        return [self._tag(pk, rec, value, plan)]

    def _tag(self, pk: PartitionKey, rec: Any, value: dict[str, Any], plan: _Plan) -> dict[str, Any]:
        side, index, field, keep = plan
        if field is not None:
            key = value.get(field)
            if key.__class__ is not int and key.__class__ is not str:
                join_key(value, field)  # a missing key field, or a list or object as key: this record is refused
        shape = self.shape
        if shape is not None and keep is None and not value.keys() <= shape.sides[index].keys():
            shape.see(index, value)
        ts = self.time_of(rec, value)
        if keep is None:
            row = Sided(value)
        else:
            row = Sided()
            for k in keep:
                if k in value:
                    row[k] = value[k]
        row.side = side
        last = ts - ts % self.hop_ms
        counts = self.counts
        if self.size_ms == self.hop_ms:  # tumbling, the common case: one window, no lists
            at = (last, side)
            n = counts.get(at, 0)
            if n >= self.max_rows:
                raise ValueError(f"the {side} side already has max_rows = {self.max_rows} rows in the window "
                                 f"starting at {last} (ms)")
            counts[at] = n + 1
            mine = self.by_pk.get(pk)
            if mine is None:
                mine = self.by_pk[pk] = {}
            mine[at] = mine.get(at, 0) + 1
            return row
        starts = [last - k * self.hop_ms for k in range(self.size_ms // self.hop_ms)]
        for s in starts:
            if counts.get((s, side), 0) >= self.max_rows:
                raise ValueError(f"the {side} side already has max_rows = {self.max_rows} rows in the window "
                                 f"starting at {s} (ms)")
        mine = self.by_pk.setdefault(pk, {})
        for s in starts:
            counts[(s, side)] = counts.get((s, side), 0) + 1
            mine[(s, side)] = mine.get((s, side), 0) + 1
        return row

    def evict_before(self, watermark: int) -> None:
        for table in (self.counts, *self.by_pk.values()):
            for ws in [ws for ws in table if ws[0] + self.size_ms <= watermark]:
                del table[ws]

    def lowest(self, pk: PartitionKey, floor: int) -> int | None:
        return None  # the rows wait in the windows, which hold the commits themselves

    def snapshot(self, pk: PartitionKey) -> Any:
        return dict(self.by_pk.get(pk, {}))

    def restore(self, pk: PartitionKey, state: Any) -> None:
        self.drop(pk)
        self.by_pk[pk] = dict(state)
        for ws, n in state.items():
            self.counts[ws] = self.counts.get(ws, 0) + n

    def drop(self, pk: PartitionKey) -> None:
        for ws, n in self.by_pk.pop(pk, {}).items():
            left = self.counts.get(ws, 0) - n
            if left > 0:
                self.counts[ws] = left
            else:
                self.counts.pop(ws, None)

    def figures(self) -> tuple[int, int, int]:
        return sum(self.counts.values()), len(self.counts), 0
