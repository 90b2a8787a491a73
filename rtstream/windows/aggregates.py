"""The aggregate language (`count()`, `sum(amount)`, ...) and its incremental accumulators.

Expressions are parsed, never evaluated. Each function keeps a small accumulator per key, so a
window costs O(keys) memory however many records pass through it, and any two accumulators of the
same function merge (partitions of one window, and later sessions and hopping windows).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import orjson

_EXPR = re.compile(r"^\s*([a-z_]+)\s*\(\s*([A-Za-z_][\w.\-]*)?\s*\)\s*$")
_NUMBER = (int, float)
MISSING = None  # a missing or null field is skipped, as SQL skips NULL


@dataclass(frozen=True, slots=True)
class Function:
    zero: Callable[[], Any]
    add: Callable[[Any, Any, int], Any]  # (acc, field value, time ms) -> acc; never raises on checked input
    merge: Callable[[Any, Any], Any]
    result: Callable[[Any], Any]
    needs_field: bool = True
    numeric: bool = True


def _min(a: Any, b: Any) -> Any:
    return b if a is None or (b is not None and b < a) else a


def _max(a: Any, b: Any) -> Any:
    return b if a is None or (b is not None and b > a) else a


def _first(a: Any, b: Any) -> Any:  # (ts, value): earliest time wins, ties keep the one seen first
    return b if a is None or (b is not None and b[0] < a[0]) else a


def _last(a: Any, b: Any) -> Any:
    return b if a is None or (b is not None and b[0] >= a[0]) else a


def _distinct_add(acc: set[Any], v: Any, ts: int) -> set[Any]:
    acc.add(v if not isinstance(v, (dict, list)) else orjson.dumps(v, option=orjson.OPT_SORT_KEYS))
    return acc


def _mean_result(acc: tuple[float, int]) -> float | None:
    return acc[0] / acc[1] if acc[1] else None


FUNCTIONS: dict[str, Function] = {
    "count": Function(lambda: 0, lambda a, v, ts: a + 1, lambda a, b: a + b, lambda a: a,
                      needs_field=False, numeric=False),
    "sum": Function(lambda: 0, lambda a, v, ts: a + v, lambda a, b: a + b, lambda a: a),
    "min": Function(lambda: None, lambda a, v, ts: _min(a, v), _min, lambda a: a),
    "max": Function(lambda: None, lambda a, v, ts: _max(a, v), _max, lambda a: a),
    "mean": Function(lambda: (0.0, 0), lambda a, v, ts: (a[0] + v, a[1] + 1),
                     lambda a, b: (a[0] + b[0], a[1] + b[1]), _mean_result),
    "first": Function(lambda: None, lambda a, v, ts: _first(a, (ts, v)), _first,
                      lambda a: None if a is None else a[1], numeric=False),
    "last": Function(lambda: None, lambda a, v, ts: _last(a, (ts, v)), _last,
                     lambda a: None if a is None else a[1], numeric=False),
    "count_distinct": Function(set, _distinct_add, lambda a, b: a | b, len, numeric=False),
}


@dataclass(frozen=True, slots=True)
class AggregateSpec:
    name: str
    function: str
    field: str | None

    @property
    def fn(self) -> Function:
        return FUNCTIONS[self.function]


def parse_aggregate(name: str, expr: str) -> AggregateSpec:
    """`parse_aggregate("total", "sum(amount)")` -> AggregateSpec("total", "sum", "amount")."""
    m = _EXPR.match(expr)
    if not m:
        raise ValueError(f"invalid aggregate {expr!r} (expected e.g. count(), sum(amount))")
    func, field = m.group(1), m.group(2)
    if func not in FUNCTIONS:
        raise ValueError(f"unknown aggregate function {func!r} (known: {', '.join(sorted(FUNCTIONS))})")
    if FUNCTIONS[func].needs_field and not field:
        raise ValueError(f"{func}() needs a field, e.g. {func}(amount)")
    if not FUNCTIONS[func].needs_field and field:
        raise ValueError(f"{func}() takes no field")
    return AggregateSpec(name, func, field)


class Aggregator:
    """Folds batches of records into per-key accumulator tables and turns tables into rows."""

    def __init__(self, key: str | None, specs: list[AggregateSpec]):
        self.key = key
        self.specs = specs
        self._adds = [s.fn.add for s in specs]
        self._fields = [s.field for s in specs]
        self._numeric = [(s.field, s.name) for s in specs if s.fn.numeric]
        self._zeros = [s.fn.zero for s in specs]

    def new_table(self) -> dict[Any, list[Any]]:
        return {}

    def check(self, value: dict[str, Any]) -> str | None:
        """Why this record cannot be folded, or None. Checking first keeps folds all-or-nothing."""
        if self.key is not None:
            k = value.get(self.key)
            if k is None:
                return f"missing key field {self.key!r}"
            if isinstance(k, (dict, list)):
                return f"key field {self.key!r} is not a scalar"
        for field, name in self._numeric:
            v = value.get(field)
            if v is not None and (v.__class__ not in _NUMBER or v != v or v in (float("inf"), float("-inf"))):
                return f"field {field!r} of aggregate {name!r} is not a finite number: {v!r}"
        return None

    def fold(self, table: dict[Any, list[Any]], value: dict[str, Any], ts: int) -> None:
        """Add one checked record to its key's accumulators."""
        k = value.get(self.key) if self.key is not None else None
        accs = table.get(k)
        if accs is None:
            accs = table[k] = [z() for z in self._zeros]
        for i, add in enumerate(self._adds):
            f = self._fields[i]
            if f is None:
                accs[i] = add(accs[i], None, ts)
            else:
                v = value.get(f)
                if v is not None:
                    accs[i] = add(accs[i], v, ts)

    def merge_into(self, into: dict[Any, list[Any]], other: dict[Any, list[Any]]) -> None:
        merges = [s.fn.merge for s in self.specs]
        for k, accs in other.items():
            mine = into.get(k)
            if mine is None:
                into[k] = accs
            else:
                into[k] = [m(a, b) for m, a, b in zip(merges, mine, accs)]

    def rows(self, table: dict[Any, list[Any]], start_iso: str, end_iso: str) -> list[dict[str, Any]]:
        results = [s.fn.result for s in self.specs]
        names = [s.name for s in self.specs]
        out = []
        for k in sorted(table, key=_sort_key):
            row: dict[str, Any] = {"window_start": start_iso, "window_end": end_iso}
            if self.key is not None:
                row[self.key] = k
            for name, res, acc in zip(names, results, table[k]):
                row[name] = res(acc)
            out.append(row)
        return out


def _sort_key(k: Any) -> tuple[str, str]:
    # keys of mixed types still sort, deterministically
    return (type(k).__name__, str(k))
