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

_MS_LOW, _MS_HIGH = 100_000_000_000, 100_000_000_000_000  # an int here is epoch ms (epoch_ms)
MAX_NAMES = 1000  # field names kept per side; a row's fields beyond them are still written, by the same rule


class RowShape:
    """The field names of one join's rows (see the module's doc)."""

    def __init__(self, left_on: str, right_on: str, left_prefix: str, right_prefix: str, time_field: str = "ts",
                 fields: tuple[list[str] | None, list[str] | None] = (None, None)):
        self.shared = left_on if left_on == right_on else None
        self.prefixes = (left_prefix, right_prefix)
        self.time_field = time_field
        # names in the order first seen; a side whose `fields` are given has those alone, known at once
        self.sides: tuple[dict[str, None], dict[str, None]] = (
            dict.fromkeys(fields[0] or ()), dict.fromkeys(fields[1] or ()))
        self.fixed = (fields[0] is not None, fields[1] is not None)
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
        if row.keys() <= names.keys() or self.fixed[side]:  # the common case, in C: no new name
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

    def left_part(self, left: dict[str, Any]) -> dict[str, Any]:
        """The left row's share of a row: computed once for all of its pairs (`pair`)."""
        return {name: left.get(k) for k, name in self.plan()[0]}

    def pair(self, left_part: dict[str, Any], left: dict[str, Any], right: dict[str, Any] | None,
             own_time: Any) -> dict[str, Any]:
        """The row of `left` (its `left_part`) and its partner `right` (None: it has none)."""
        out = left_part.copy()
        if right is None:
            for _, name in self.plan()[1]:
                out[name] = None
        else:
            for k, name in self.plan()[1]:
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

    def row(self, left: dict[str, Any], right: dict[str, Any] | None, own_time: Any) -> dict[str, Any]:
        """The row of `left` and its partner `right` (None: it has none), with `own_time` as its time."""
        return self.pair(self.left_part(left), left, right, own_time)


def _ms(value: Any) -> int | None:
    """A time value in epoch ms, or None when it cannot be read."""
    try:
        return epoch_ms(value)
    except Exception:  # noqa: BLE001 - a row without a readable time (processing time)
        return None


def pair_window(rows: list[dict[str, Any]], left_on: str, right_on: str, how: str,
                shape: RowShape) -> list[dict[str, Any]]:
    """A window join of one closed window's rows (each marked with its `side` by the fold, which
    already dead-lettered a row without its key field or with a list or object as key).

    A pair's time is the later row's time field value (the left's on a tie, or, when either cannot
    be read, the left's unless it has none). The rows are `RowShape.row`'s, made cheaper: each row's
    time is read once, not once per pair, and a left row's share is built once (`left_part`)."""
    tf = shape.time_field
    rights: dict[Any, list[dict[str, Any]]] = {}
    lefts: list[tuple[dict[str, Any], Any]] = []
    out: list[dict[str, Any]] = []
    see = shape.see
    learn_left, learn_right = not shape.fixed[0], not shape.fixed[1]
    for row in rows:
        side = getattr(row, "side", None)
        if side is None:
            out.append(row)  # a source that is no side of this join
            continue
        key = row.get(left_on if side == "left" else right_on)
        if key.__class__ is not int and key.__class__ is not str:  # the common kinds are their own key
            key = _key(row, left_on if side == "left" else right_on)
        if side == "left":
            if learn_left:
                see(0, row)
            lefts.append((row, key))
        else:
            if learn_right:
                see(1, row)
            if key is not NO_MATCH:
                got = rights.get(key)
                if got is None:
                    rights[key] = [row]
                else:
                    got.append(row)
    rplan = shape.plan()[1]
    full = shape._full
    append = out.append
    for row, key in lefts:
        matches = rights.get(key) if key is not NO_MATCH else None
        if matches:
            part = shape.left_part(row)
            a = row.get(tf)
            la = _ms(a)
            for r in matches:
                b = r.get(tf)  # epoch ms, the common case, read without a call
                rb = b if b.__class__ is int and _MS_LOW <= b < _MS_HIGH else _ms(b)
                own = (b if rb > la else a) if la is not None and rb is not None else (a if a is not None else b)
                if full:
                    append(shape.pair(part, row, r, own))
                    continue
                new = part.copy()  # RowShape.pair, inline
                for k, name in rplan:
                    new[name] = r.get(k)
                new[tf] = own
                append(new)
        elif how == "left":
            append(shape.row(row, None, row.get(tf)))
    return out


def _key(row: dict[str, Any], field: str) -> Any:
    try:
        return join_key(row, field)
    except ValueError:  # only a row of a checkpoint taken before the fold refused such keys
        return NO_MATCH
