"""The rows a join makes: one shape for every row of one join, matched or not.

A table sink creates its table from the first rows it gets and refuses a later row with a field the
table lacks; so a join whose matched rows had `left_ts`/`right_ts` and whose unmatched rows had `ts`
halted such a sink for good. Every row of a join (window, interval or table join) therefore has:
- each left field, named `left_prefix`+name when the right side has that field too (other than a
  shared key `on`), else as it is; then each right field, `right_prefix`+name when the left side
  has it; a side's fields are those its rows have had since the join started (the names, not the
  values, kept up to `MAX_NAMES` per side), so a field both sides carry is renamed in every row;
- the time field always renamed on both sides (`left_ts`, `right_ts`: every row has it), and the
  row's own time as the time field (`ts`): the later of the pair for a window or interval join, the
  stream row's for a table join, the left row's for a row without a partner;
- the other side's fields as null in a row without a partner (a left join's unmatched left row).
"""

from __future__ import annotations

from typing import Any

from rtstream.engine.join_keys import NO_MATCH, join_key
from rtstream.windows.clock import epoch_ms

MAX_NAMES = 1000  # field names kept per side; a row's fields beyond them are still written, by the same rule


class RowShape:
    """The field names of one join's rows (see the module's doc)."""

    def __init__(self, left_on: str, right_on: str, left_prefix: str, right_prefix: str, time_field: str = "ts"):
        self.shared = left_on if left_on == right_on else None
        self.prefixes = (left_prefix, right_prefix)
        self.time_field = time_field
        self.sides: tuple[dict[str, None], dict[str, None]] = ({}, {})  # names in the order first seen
        self._plan: tuple[list[tuple[str, str]], list[tuple[str, str]]] | None = None
        self._full = False  # a side reached MAX_NAMES: rows may have fields beyond the known names

    def set_time_field(self, time_field: str) -> None:
        """The pipeline's time field, once the engine has bound the join (rtstream.engine.stateful)."""
        if time_field != self.time_field:
            self.time_field = time_field
            self._plan = None

    def see(self, side: int, row: dict[str, Any]) -> None:
        """Learn the field names of a row of `side` (0: left, 1: right)."""
        names = self.sides[side]
        if row.keys() <= names.keys():  # the common case, in C: no new name
            return
        for k in row:
            if k not in names:
                if len(names) >= MAX_NAMES:
                    self._full = True
                    return
                names[k] = None
                self._plan = None

    def _names(self, side: int, k: str) -> str:
        other = self.sides[1 - side]
        if k == self.time_field or (k in other and k != self.shared):
            return self.prefixes[side] + k
        return k

    def plan(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        if self._plan is None:  # the time field is on both sides even before a row of one came
            left, right = (list(names) + [self.time_field] * (self.time_field not in names) for names in self.sides)
            named = [(0, k, self._names(0, k)) for k in left] + \
                [(1, k, self._names(1, k)) for k in right if k != self.shared]
            # a renamed field whose new name a field of either side already has (a left row's own
            # `left_ts`), or the row's time, is prefixed again: no value silently overwrites another
            taken = {name for _, k, name in named if name == k} | {self.time_field}
            plan: tuple[list[tuple[str, str]], list[tuple[str, str]]] = ([], [])
            for side, k, name in named:
                if name != k:  # (an empty prefix renames nothing: the right row's value wins, as asked)
                    while name in taken:
                        name = self.prefixes[side] + name
                    taken.add(name)
                plan[side].append((k, name))
            self._plan = plan
        return self._plan

    def row(self, left: dict[str, Any], right: dict[str, Any] | None, own_time: Any) -> dict[str, Any]:
        """The row of `left` and its partner `right` (None: it has none), with `own_time` as its time."""
        lplan, rplan = self.plan()
        out = {name: left.get(k) for k, name in lplan}
        if right is None:
            for _, name in rplan:
                out[name] = None
        else:
            for k, name in rplan:
                out[name] = right.get(k)
        if self._full:  # fields beyond the names kept: written all the same, never dropped
            for k, v in left.items():
                if k not in self.sides[0] and k != self.time_field:
                    out[self._names(0, k)] = v
            if right is not None:
                for k, v in right.items():
                    if k not in self.sides[1] and k != self.shared and k != self.time_field:
                        out[self._names(1, k)] = v
        out[self.time_field] = own_time
        return out


def later_time(left: dict[str, Any], right: dict[str, Any], time_field: str) -> Any:
    """The time field's value of the later of two rows (the left's on a tie, or when one cannot be read)."""
    a, b = left.get(time_field), right.get(time_field)
    try:
        return b if epoch_ms(b) > epoch_ms(a) else a
    except Exception:  # noqa: BLE001 - a row without a readable time (processing time): keep what there is
        return a if a is not None else b


def pair_window(rows: list[dict[str, Any]], left_on: str, right_on: str, how: str,
                shape: RowShape) -> list[dict[str, Any]]:
    """A window join of one closed window's rows (each marked with its `side` by the fold, which
    already dead-lettered a row without its key field or with a list or object as key)."""
    tf = shape.time_field
    rights: dict[Any, list[dict[str, Any]]] = {}
    lefts: list[tuple[dict[str, Any], Any]] = []
    out: list[dict[str, Any]] = []
    for row in rows:
        side = getattr(row, "side", None)
        if side is None:
            out.append(row)  # a source that is no side of this join
            continue
        field = left_on if side == "left" else right_on
        try:
            key = join_key(row, field)
        except ValueError:  # only a row of a checkpoint taken before the fold refused such keys
            key = NO_MATCH
        if side == "left":
            shape.see(0, row)
            lefts.append((row, key))
        else:
            shape.see(1, row)
            if key is not NO_MATCH:
                rights.setdefault(key, []).append(row)
    for row, key in lefts:
        matches = rights.get(key) if key is not NO_MATCH else None
        if matches:
            out.extend(shape.row(row, r, later_time(row, r, tf)) for r in matches)
        elif how == "left":
            out.append(shape.row(row, None, row.get(tf)))
    return out
