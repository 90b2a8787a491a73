"""The predicates a `where` expression compiles to: plain closures over a row, built once.

rtstream.where.language parses; this module builds. Every closure returns a bool and never raises, whatever
the row holds (see rtstream.where.language for the meaning): values of different kinds compare false, a
missing field is null, and the one comparison that can raise (a NaN Decimal ordered) is caught.
The common shapes (`store != 's001'`, `total > 1000`, `kind in ['a', 'b']` on a top-level field)
get closures with the lookup inlined; `and` / `or` chains of any length are loops, not nested calls.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from decimal import Decimal
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]
Getter = Callable[[dict[str, Any]], Any]
Side = tuple[bool, Any]  # (is a field, its path) or (False, a literal value)

_NUMBER = frozenset({int, float, Decimal})
_KINDS: dict[type, frozenset[type]] = {int: _NUMBER, float: _NUMBER, Decimal: _NUMBER,
                                       str: frozenset({str}), bool: frozenset({bool})}



def _getter(path: tuple[str, ...]) -> Getter:
    if len(path) == 1:
        name = path[0]
        return lambda row: row.get(name)

    def walk(row: dict[str, Any]) -> Any:
        value: Any = row
        for part in path:
            if value.__class__ is not dict:
                return None
            value = value.get(part)
        return value

    return walk


def _operand(side: Side) -> Getter:
    is_field, value = side
    if is_field:
        return _getter(value)
    return lambda row: value


def compare(op: Callable[[Any, Any], Any], left: Side, right: Side) -> Predicate:
    if not left[0] and not right[0]:  # two literals: decided once
        result = _same_kind_compare(op, left[1], right[1])
        return lambda row: result
    if not right[0] or not left[0]:
        field_side, lit = (left, right[1]) if left[0] else (right, left[1])
        if not left[0]:  # `5 < x` is `x > 5`
            flipped = {operator.lt: operator.gt, operator.le: operator.ge, operator.gt: operator.lt,
                       operator.ge: operator.le}
            op = flipped.get(op, op)
        kinds = _KINDS.get(lit.__class__)
        if kinds is None:  # null: no comparison with it is ever true
            return lambda row: False
        if len(field_side[1]) == 1 and lit.__class__ is not Decimal:
            return _top_field_vs_literal(op, field_side[1][0], lit)
        get = _getter(field_side[1])
        as_decimal = _decimal(lit)

        def field_vs_literal(row: dict[str, Any]) -> bool:
            v = get(row)
            if v.__class__ not in kinds:
                return False
            try:
                if v.__class__ is Decimal:
                    return op(v, as_decimal) is True
                return op(v, lit) is True
            except Exception:  # noqa: BLE001 - a Decimal NaN ordered against a number
                return False

        return field_vs_literal
    a, b = _getter(left[1]), _getter(right[1])
    return lambda row: _same_kind_compare(op, a(row), b(row))


def _top_field_vs_literal(op: Callable[[Any, Any], Any], name: str, lit: Any) -> Predicate:
    """The common case (`store != 's001'`, `total > 1000`) with the getter inlined: str and bool
    comparisons cannot raise, nor can int and float ones; only a Decimal value takes the slow path."""
    if lit.__class__ is str:
        return lambda row: (v := row.get(name)).__class__ is str and op(v, lit)
    if lit.__class__ is bool:
        return lambda row: (v := row.get(name)).__class__ is bool and op(v, lit)
    as_decimal = _decimal(lit)

    def number_vs_literal(row: dict[str, Any]) -> bool:
        v = row.get(name)
        c = v.__class__
        if c is int or c is float:
            return op(v, lit)  # type: ignore[no-any-return]
        if c is Decimal:
            try:
                return op(v, as_decimal) is True
            except ArithmeticError:  # a NaN Decimal ordered
                return False
        return False

    return number_vs_literal


def _decimal(lit: Any) -> Any:
    """A number literal as a Decimal, so that a NUMERIC 9.90 equals the literal 9.9 as written."""
    if lit.__class__ in (int, float):
        try:
            return Decimal(repr(lit))
        except ArithmeticError:
            return lit
    return lit


def _same_kind_compare(op: Callable[[Any, Any], Any], a: Any, b: Any) -> bool:
    kinds = _KINDS.get(a.__class__)
    if kinds is None or b.__class__ not in kinds:
        return False
    try:
        return op(a, b) is True
    except Exception:  # noqa: BLE001 - a Decimal NaN ordered against a number
        return False


def is_null(side: Side, negate: bool) -> Predicate:
    get = _operand(side)
    if negate:
        return lambda row: get(row) is not None
    return lambda row: get(row) is None


def member_of(side: Side, items: list[Any], negate: bool) -> Predicate:
    get = _operand(side)
    numbers = frozenset(x for x in items if x.__class__ in _NUMBER and x == x)  # NaN equals nothing
    decimals = frozenset(_decimal(x) for x in numbers)
    strings = frozenset(x for x in items if x.__class__ is str)
    bools = frozenset(x for x in items if x.__class__ is bool)
    by_kind: dict[type, frozenset[Any]] = {int: numbers, float: numbers, Decimal: decimals, str: strings,
                                           bool: bools}

    if side[0] and len(side[1]) == 1 and not numbers and not bools and not negate:
        name = side[1][0]  # the common case, `kind in ['view', 'click']`: strings cannot raise
        return lambda row: (v := row.get(name)).__class__ is str and v in strings

    def member(row: dict[str, Any]) -> bool:
        v = get(row)
        pool = by_kind.get(v.__class__)
        if pool is None:  # null or another kind: false, for `not in` too (like `!=`)
            return False
        try:
            found = v in pool
        except Exception:  # noqa: BLE001 - a signalling Decimal NaN cannot be hashed
            found = False
        return found != negate

    return member


def truthy(side: Side) -> Predicate:
    get = _operand(side)
    return lambda row: get(row) is True


def all_of(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda row: a(row) and b(row)
    if len(parts) == 3:
        a, b, c = parts
        return lambda row: a(row) and b(row) and c(row)

    def every(row: dict[str, Any]) -> bool:  # a loop, not nested closures: any length, no deep recursion
        for p in parts:
            if not p(row):
                return False
        return True

    return every


def any_of(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda row: a(row) or b(row)
    if len(parts) == 3:
        a, b, c = parts
        return lambda row: a(row) or b(row) or c(row)

    def some(row: dict[str, Any]) -> bool:
        for p in parts:
            if p(row):
                return True
        return False

    return some
