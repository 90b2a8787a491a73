"""Aggregates that pick rows by another field: `max_by`, `min_by`, `argmax`, `argmin`, `top`, `bottom`.

Named after Spark/Trino (`max_by(x, y)`: the x of the row with the largest y) and Flink's Top-N.
They take two arguments and see the whole row, so they live beside the one-field functions of
rtstream.windows.aggregates. Typical use is a chained aggregate over a windowed one (Nexmark's hot
items): count per auction per window, then `argmax(auction, bids)` per window, ties kept.

- `max_by(f, by)` / `min_by(f, by)`: the f of the row with the largest (smallest) by; on a tie the
  earliest row wins (its time, then the order it was seen).
- `argmax(f, by)` / `argmin(f, by)`: every f whose by is the largest (smallest), ties kept, earliest first.
- `top(n, by)` / `bottom(n, by)`: the n whole rows with the largest (smallest) by, best first, ties
  broken by the earliest row. n is at most MAX_N: the accumulator is bounded.

A row whose `by` is missing or null is skipped (as SQL skips NULL); a `by` that is not a finite number
or a string, or that cannot be compared with the others (a number against a string), refuses its
row with the reason, as other aggregates refuse a non-number.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

MAX_N = 1000
MAXF = sys.float_info.max
_TWO = re.compile(r"^\s*([a-z_]+)\s*\(\s*([A-Za-z_][\w.\-]*|\d+)\s*,\s*([A-Za-z_][\w.\-]*)\s*\)\s*$")
NAMES = ("max_by", "min_by", "argmax", "argmin", "top", "bottom")


class Parts(NamedTuple):
    zero: Callable[[], Any]
    add: Callable[[Any, dict[str, Any], int], Any]  # (acc, the whole row, time) -> acc
    merge: Callable[[Any, Any], Any]
    result: Callable[[Any], Any]


class RankRefused(ValueError):
    """A row's `by` cannot be ranked: the row is refused with this reason."""


def _rank(v: Any, by: str) -> Any:
    if v.__class__ is str:
        return v
    if v.__class__ not in (int, float) or not -MAXF <= v <= MAXF:
        raise RankRefused(f"field {by!r} is not a finite number or a string: {str(v)[:100]}")
    return v


def _better(sign: int) -> Callable[[Any, Any], bool]:
    """`a` ranks before `b` (both (rank, ts, ...)): a larger (sign 1) or smaller (-1) rank, then the earlier time."""
    def better(a: Any, b: Any) -> bool:
        try:
            if a[0] != b[0]:
                return bool(a[0] > b[0]) if sign > 0 else bool(a[0] < b[0])
        except TypeError:
            raise RankRefused(f"cannot compare {a[0]!r} with {b[0]!r}") from None
        return bool(a[1] < b[1])
    return better


def _by_one(field: str, by: str, sign: int) -> Parts:
    """max_by / min_by: acc = (rank, ts, value) or None."""
    better = _better(sign)

    def add(acc: Any, row: dict[str, Any], ts: int) -> Any:
        r = row.get(by)
        if r is None:
            return acc
        cand = (_rank(r, by), ts, row.get(field))
        return cand if acc is None or better(cand, acc) else acc

    def merge(a: Any, b: Any) -> Any:
        return b if a is None or (b is not None and better(b, a)) else a

    return Parts(lambda: None, add, merge, lambda a: None if a is None else a[2])


def _by_all(field: str, by: str, sign: int) -> Parts:
    """argmax / argmin: acc = (rank, [(ts, value), ...]) or None; every row of the best rank is kept."""
    better = _better(sign)

    def add(acc: Any, row: dict[str, Any], ts: int) -> Any:
        r = row.get(by)
        if r is None:
            return acc
        r = _rank(r, by)
        if acc is None or better((r, 0), (acc[0], 0)):
            return (r, [(ts, row.get(field))])
        if r == acc[0]:
            acc[1].append((ts, row.get(field)))
        return acc

    def merge(a: Any, b: Any) -> Any:
        if a is None or b is None:
            return b if a is None else a
        if a[0] == b[0]:
            return (a[0], a[1] + b[1])
        return b if better((b[0], 0), (a[0], 0)) else a

    def result(acc: Any) -> Any:
        return [] if acc is None else [v for _, v in sorted(acc[1], key=lambda t: t[0])]

    return Parts(lambda: None, add, merge, result)


def _best_n(n: int, by: str, sign: int) -> Parts:
    """top / bottom: acc = the best n as [(rank, ts, seq, row)], best first; seq keeps equal rows in order."""
    better = _better(sign)
    counter = [0]

    def insert(acc: list[Any], item: Any) -> list[Any]:
        i = len(acc)
        while i > 0 and better(item, acc[i - 1]):
            i -= 1
        if i < n:
            acc.insert(i, item)
            del acc[n:]
        return acc

    def add(acc: list[Any], row: dict[str, Any], ts: int) -> list[Any]:
        r = row.get(by)
        if r is None:
            return acc
        counter[0] += 1
        return insert(acc, (_rank(r, by), ts, counter[0], dict(row)))

    def merge(a: list[Any], b: list[Any]) -> list[Any]:
        out = list(a)
        for item in b:
            insert(out, item)
        return out

    return Parts(list, add, merge, lambda acc: [item[3] for item in acc])


def parse_ranking(expr: str) -> tuple[str, Parts] | None:
    """(function name, its parts) of a two-argument ranking aggregate, or None when `expr` is not one
    (rtstream.windows.aggregates makes it a Function that sees the whole row)."""
    m = _TWO.match(expr)
    if not m or m.group(1) not in NAMES:
        if m:
            raise ValueError(f"unknown aggregate function {m.group(1)!r} with two arguments "
                             f"(known: {', '.join(NAMES)})")
        return None
    func, first, by = m.groups()
    sign = 1 if func in ("max_by", "argmax", "top") else -1
    if func in ("top", "bottom"):
        if not first.isdigit() or not 1 <= int(first) <= MAX_N:
            raise ValueError(f"{func}(n, by) needs a count n from 1 to {MAX_N}, e.g. {func}(3, {by})")
        fn = _best_n(int(first), by, sign)
    elif first.isdigit():
        raise ValueError(f"{func}(field, by) needs a field name first, e.g. {func}(auction, bids)")
    elif func in ("max_by", "min_by"):
        fn = _by_one(first, by, sign)
    else:
        fn = _by_all(first, by, sign)
    return func, fn
