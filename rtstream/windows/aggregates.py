"""The aggregate language (`count()`, `sum(amount)`, ...) and its incremental accumulators.

Expressions are parsed, never evaluated. Each function keeps a small accumulator per key, so a
window costs O(keys) memory however many records pass through it, and any two accumulators of the
same function merge (partitions of one window, and later sessions and hopping windows).
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from rtstream.windows.ranking import NAMES, parse_ranking

_EXPR = re.compile(r"^\s*([a-z_]+|[A-Za-z_][\w.]*:[A-Za-z_][\w.]*)\s*\(\s*([A-Za-z_][\w.\-]*)?\s*\)\s*$")
_NUMBER = (int, float)
# A value or running sum outside +-MAXF is refused: `not -MAXF <= x <= MAXF` is one comparison that
# is true for inf, -inf, NaN and integers too big for a float (Python compares int and float exactly),
# so a float sum never becomes inf and an exact integer sum can always meet a float later.
MAXF = sys.float_info.max
MISSING = None  # a missing or null field is skipped, as SQL skips NULL


@dataclass(frozen=True, slots=True)
class Function:
    zero: Callable[[], Any]
    add: Callable[[Any, Any, int], Any]  # (acc, field value, time ms) -> acc; never raises on checked input
    merge: Callable[[Any, Any], Any]
    result: Callable[[Any], Any]
    needs_field: bool = True
    numeric: bool = True


def _show(v: Any) -> str:
    """A refused value in a reason: an integer too long to print whole is described instead."""
    if v.__class__ is int and not -MAXF <= v <= MAXF:
        return f"an integer of {v.bit_length()} bits"
    return repr(v)


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
    custom: Function | None = None  # a user-defined aggregator (module:Class())

    @property
    def fn(self) -> Function:
        return self.custom or FUNCTIONS[self.function]

    @property
    def is_custom(self) -> bool:
        return ":" in self.function

    @property
    def takes_row(self) -> bool:
        """Called with the whole row (a user's aggregator, or a ranking one such as max_by)."""
        return self.custom is not None or ":" in self.function


def user_function(cls: Any) -> Function:
    """A class with zero(), add(acc, record), merge(a, b) and result(acc), as a Function."""
    inst = cls()
    for method in ("zero", "add", "merge", "result"):
        if not callable(getattr(inst, method, None)):
            raise ValueError(f"{cls.__name__} has no {method}() method (an aggregator needs zero, add, merge, result)")
    return Function(inst.zero, lambda acc, record, ts: inst.add(acc, record), inst.merge, inst.result,
                    needs_field=False, numeric=False)


def parse_aggregate(name: str, expr: str) -> AggregateSpec:
    """`parse_aggregate("total", "sum(amount)")` -> AggregateSpec("total", "sum", "amount")."""
    ranked = parse_ranking(expr)  # max_by(f, by), top(n, by), ...: rtstream.windows.ranking
    if ranked is not None:
        z, add, merge, result = ranked[1]
        return AggregateSpec(name, ranked[0], None, Function(z, add, merge, result, needs_field=False, numeric=False))
    m = _EXPR.match(expr)
    if not m:
        raise ValueError(f"invalid aggregate {expr!r} (expected e.g. count(), sum(amount))")
    func, field = m.group(1), m.group(2)
    if ":" in func:
        if field:
            raise ValueError(f"{func}() gets the whole record: write {func}()")
        return AggregateSpec(name, func, None)
    if func not in FUNCTIONS:
        raise ValueError(f"unknown aggregate function {func!r} (known: {', '.join(sorted([*FUNCTIONS, *NAMES]))})")
    if FUNCTIONS[func].needs_field and not field:
        raise ValueError(f"{func}() needs a field, e.g. {func}(amount)")
    if not FUNCTIONS[func].needs_field and field:
        raise ValueError(f"{func}() takes no field")
    return AggregateSpec(name, func, field)


# Inline updates for the common functions; the others call their Function.add.
_INLINE = {
    "count": "accs[{i}] += 1",
    "sum": "if v{i} is not None: accs[{i}] += v{i}",
    "min": "if v{i} is not None and (accs[{i}] is None or v{i} < accs[{i}]): accs[{i}] = v{i}",
    "max": "if v{i} is not None and (accs[{i}] is None or v{i} > accs[{i}]): accs[{i}] = v{i}",
}


def compile_update(key: str | None, specs: list[AggregateSpec]) -> Callable[[dict[Any, list[Any]], dict[str, Any], int], str | None]:
    """One function that checks a record and folds it into its key's accumulators.

    `update(table, value, ts)` returns why the record cannot be used (touching nothing), or None.
    The source is generated from our own templates only: field names and messages are passed in as
    constants, never written into the code, so no user text is ever evaluated.
    """
    ns: dict[str, Any] = {"NUM": _NUMBER, "MAXF": MAXF, "SHOW": _show, "CANCELLED": asyncio.CancelledError}
    lines = ["def update(table, value, ts):"]
    if key is not None:
        ns["KEY"] = key
        ns["NO_KEY"] = f"missing key field {key!r}"
        ns["BAD_KEY"] = f"key field {key!r} is not a scalar"
        lines += ["    k = value.get(KEY)", "    if k is None: return NO_KEY",
                  "    if k.__class__ is dict or k.__class__ is list: return BAD_KEY"]
    else:
        lines.append("    k = None")
    for i, spec in enumerate(specs):
        if spec.field is None:
            continue
        ns[f"F{i}"] = spec.field
        lines.append(f"    v{i} = value.get(F{i})")
        if spec.fn.numeric:
            ns[f"BAD{i}"] = f"field {spec.field!r} of aggregate {spec.name!r} is not a finite number: "
            lines.append(f"    if v{i} is not None and (v{i}.__class__ not in NUM or not -MAXF <= v{i} <= MAXF): "
                         f"return BAD{i} + SHOW(v{i})")
    lines.append("    accs = table.get(k)")
    sums = [(i, spec) for i, spec in enumerate(specs) if spec.function in ("sum", "mean") and not spec.is_custom]
    if sums:  # the sum this record would make, checked before anything is touched
        lines.append("    if accs is not None:")
        for i, spec in sums:
            ns[f"OVF{i}"] = f"{spec.function} of {spec.field} overflows (aggregate {spec.name!r})"
            acc = f"accs[{i}]" if spec.function == "sum" else f"accs[{i}][0]"
            lines += [f"        if v{i} is not None:", f"            s{i} = {acc} + v{i}",
                      f"            if not -MAXF <= s{i} <= MAXF: return OVF{i}"]
    for i, spec in enumerate(specs):
        if spec.takes_row:  # user code: call it before touching anything, so a raise leaves no trace
            ns[f"ADD{i}"], ns[f"ZERO{i}"] = spec.fn.add, spec.fn.zero
            ns[f"RAISED{i}"] = f"aggregate {spec.name!r} raised "
            lines += ["    try:", f"        u{i} = ADD{i}(accs[{i}] if accs is not None else ZERO{i}(), value, ts)",
                      "    except CANCELLED:", "        raise",  # sys.exit() too fails only this record
                      "    except BaseException as exc:", f"        return RAISED{i} + repr(exc)"]
    zeros = []
    for i, spec in enumerate(specs):
        zero = spec.fn.zero()
        if zero is None or isinstance(zero, (int, float, tuple)):
            zeros.append(repr(zero))  # an immutable constant of ours: written inline
        else:
            ns[f"ZERO{i}"] = spec.fn.zero
            zeros.append(f"ZERO{i}()")
    lines += ["    if accs is None:", f"        accs = table[k] = [{', '.join(zeros)}]"]
    for i, spec in enumerate(specs):
        if spec.takes_row:
            lines.append(f"    accs[{i}] = u{i}")
        elif spec.function in _INLINE:
            lines.append("    " + _INLINE[spec.function].format(i=i))
        else:
            ns[f"ADD{i}"] = spec.fn.add
            guard = f"if v{i} is not None: " if spec.field is not None else ""
            arg = f"v{i}" if spec.field is not None else "None"
            lines.append(f"    {guard}accs[{i}] = ADD{i}(accs[{i}], {arg}, ts)")
    lines.append("    return None")
    exec("\n".join(lines), ns)  # noqa: S102 - our own template, see the docstring
    return ns["update"]  # type: ignore[no-any-return]


class Aggregator:
    """Folds batches of records into per-key accumulator tables and turns tables into rows."""

    def __init__(self, key: str | None, specs: list[AggregateSpec]):
        self.key = key
        self.specs = specs
        self.update = compile_update(key, specs)

    def new_table(self) -> dict[Any, list[Any]]:
        return {}

    def zero_table(self) -> dict[Any, list[Any]]:
        return {None: [s.fn.zero() for s in self.specs]}

    def merge_into(self, into: dict[Any, list[Any]], other: dict[Any, list[Any]]) -> None:
        merges = [s.fn.merge for s in self.specs]
        for k, accs in other.items():
            mine = into.get(k)
            if mine is None:
                into[k] = accs
            else:
                into[k] = [m(a, b) for m, a, b in zip(merges, mine, accs, strict=True)]

    def rows(self, table: dict[Any, list[Any]], start_iso: str, end_iso: str) -> list[dict[str, Any]]:
        results = [s.fn.result for s in self.specs]
        names = [s.name for s in self.specs]
        out = []
        try:
            keys = sorted(table)
        except TypeError:  # keys of mixed types still sort, deterministically
            keys = sorted(table, key=_sort_key)
        for k in keys:
            row: dict[str, Any] = {"window_start": start_iso, "window_end": end_iso}
            if self.key is not None:
                row[self.key] = k
            for name, res, acc in zip(names, results, table[k], strict=True):
                row[name] = res(acc)
            out.append(row)
        return out


def _sort_key(k: Any) -> tuple[str, str]:
    return (type(k).__name__, str(k))
