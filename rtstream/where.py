"""`where`: a small filter language over a row's fields, parsed here and never evaluated as Python.

    total > 1000 and store != 's001'
    kind in ['click', 'view'] or (amount >= 10.5 and not coupon is null)
    customer.country = "FR"                  -- dotted: a field inside a nested object
    `order total` > 0                        -- backquotes: a field name that is not a plain word

Grammar (keywords in any case):

    expr     := and_expr ("or" and_expr)*
    and_expr := not_expr ("and" not_expr)*
    not_expr := "not" not_expr | test
    test     := "(" expr ")" | value [op value | "is" ["not"] "null" | ["not"] "in" list]
    op       := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    value    := field | number | string | "true" | "false" | "null"
    list     := "[" [literal ("," literal)*] "]"

Meaning, chosen so that evaluation never raises and `not (e)` is always the exact complement of `e`
(two sinks with `e` and `not (e)` split the rows, every row to exactly one of them):

- A missing field (or a dotted path through something that is not an object) is null.
- A comparison is true only between values of the same kind: numbers (int, float, Decimal; not
  booleans), strings, booleans. Anything else, including null on either side, is false: `'5' = 5`,
  `x != 's001'` when x is missing, `flag < 1`. Use `is null` / `is not null` for nulls.
- `in [...]` holds when the value equals (as `=` does) one of the literals; a list may not hold null.
- A value alone is a test: true only when it is the boolean true (`where = "is_member"`).

`compile_where(text)` parses once and returns a `Where` whose `matches(row)` is a chain of plain
closures: the hot path does no parsing and no lookups beyond the row's own.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]
Getter = Callable[[dict[str, Any]], Any]

MAX_LENGTH = 10_000  # characters of an expression; real ones are a line
MAX_DEPTH = 64  # nested parentheses and nots

_NUMBER = frozenset({int, float, Decimal})
_KINDS: dict[type, frozenset[type]] = {int: _NUMBER, float: _NUMBER, Decimal: _NUMBER,
                                       str: frozenset({str}), bool: frozenset({bool})}
_OPS: dict[str, Callable[[Any, Any], Any]] = {"=": operator.eq, "==": operator.eq, "!=": operator.ne,
                                              "<>": operator.ne, "<": operator.lt, "<=": operator.le,
                                              ">": operator.gt, ">=": operator.ge}
_KEYWORDS = {"and", "or", "not", "in", "is", "null", "true", "false"}
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<quoted>`[^`]*`)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op>==|!=|<>|<=|>=|=|<|>)
  | (?P<punct>[()\[\],])
""", re.VERBOSE | re.DOTALL)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}


class WhereError(ValueError):
    """An expression that does not parse; `column` is 1-based, as the message says."""

    def __init__(self, message: str, column: int):
        self.column = column
        super().__init__(f"{message} at column {column}")


class Where:
    """A compiled expression: `matches(row)` is true when the row passes.

    >>> w = compile_where("total > 1000 and store != 's001'")
    >>> w.matches({"total": 1500, "store": "s002"}), w.matches({"total": "1500", "store": "s002"})
    (True, False)
    """

    __slots__ = ("text", "matches")

    def __init__(self, text: str, matches: Predicate):
        self.text = text
        self.matches = matches

    def select(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows that match, in order."""
        m = self.matches
        return [r for r in rows if m(r)]

    def __repr__(self) -> str:
        return f"Where({self.text!r})"


def compile_where(text: str) -> Where:
    """Parse `text` and build its predicate; raises WhereError (a ValueError) with the column."""
    if not isinstance(text, str):
        raise WhereError("the expression must be a string", 1)
    if len(text) > MAX_LENGTH:
        raise WhereError(f"the expression is longer than {MAX_LENGTH} characters", MAX_LENGTH + 1)
    parser = _Parser(text)
    if parser.peek() is None:
        raise WhereError("empty expression", 1)
    pred = parser.expr(0)
    parser.expect_end()
    return Where(text, pred)


class _Token:
    __slots__ = ("kind", "text", "value", "column")

    def __init__(self, kind: str, text: str, value: Any, column: int):
        self.kind, self.text, self.value, self.column = kind, text, value, column


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            if ch in "'\"":
                raise WhereError(f"unterminated string starting with {ch}", pos + 1)
            if ch == "`":
                raise WhereError("unterminated `quoted field`", pos + 1)
            raise WhereError(f"unexpected {ch!r}", pos + 1)
        kind = m.lastgroup
        raw = m.group()
        col = pos + 1
        pos = m.end()
        if kind == "space":
            continue
        if kind == "number":
            if len(raw) > 100:
                raise WhereError("number is too long", col)
            value: Any = float(raw) if any(c in raw for c in ".eE") else int(raw)
            if isinstance(value, float) and value in (float("inf"), float("-inf")):
                raise WhereError(f"number {raw} is out of range", col)
            out.append(_Token("literal", raw, value, col))
        elif kind == "word" and raw.lower() in _KEYWORDS:
            word = raw.lower()
            literal = {"null": None, "true": True, "false": False}
            out.append(_Token("literal", raw, literal[word], col) if word in literal else _Token(word, raw, None, col))
        elif kind == "word":
            out.append(_Token("field", raw, tuple(raw.split(".")), col))
        elif kind == "quoted":
            if len(raw) == 2:
                raise WhereError("empty `quoted field`", col)
            out.append(_Token("field", raw, (raw[1:-1],), col))
        elif kind == "string":
            out.append(_Token("literal", raw, _unescape(raw[1:-1], col), col))
        else:  # op, punct
            out.append(_Token(raw, raw, None, col))
    return out


_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _unescape(body: str, col: int) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(1) not in _ESCAPES:
            raise WhereError(f"unknown escape \\{m.group(1)} in a string", col + m.start() + 1)
        return _ESCAPES[m.group(1)]

    return _ESCAPE.sub(one, body) if "\\" in body else body


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> _Token | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Token:
        tok = self.peek()
        if tok is None:
            raise WhereError("unexpected end of expression", len(self.text) + 1)
        self.i += 1
        return tok

    def accept(self, kind: str) -> _Token | None:
        tok = self.peek()
        if tok is not None and tok.kind == kind:
            self.i += 1
            return tok
        return None

    def expect(self, kind: str, what: str) -> _Token:
        tok = self.peek()
        if tok is None:
            raise WhereError(f"expected {what}, found the end of the expression", len(self.text) + 1)
        if tok.kind != kind:
            raise WhereError(f"expected {what}, found {tok.text!r}", tok.column)
        self.i += 1
        return tok

    def expect_end(self) -> None:
        tok = self.peek()
        if tok is not None:
            raise WhereError(f"unexpected {tok.text!r}", tok.column)

    def expr(self, depth: int) -> Predicate:
        parts = [self.and_expr(depth)]
        while self.accept("or"):
            parts.append(self.and_expr(depth))
        return _any(parts)

    def and_expr(self, depth: int) -> Predicate:
        parts = [self.not_expr(depth)]
        while self.accept("and"):
            parts.append(self.not_expr(depth))
        return _all(parts)

    def not_expr(self, depth: int) -> Predicate:
        tok = self.peek()
        if tok is not None and tok.kind == "not":
            self._deeper(depth, tok)
            self.i += 1
            inner = self.not_expr(depth + 1)
            return lambda row: not inner(row)
        return self.test(depth)

    def test(self, depth: int) -> Predicate:
        tok = self.peek()
        if tok is not None and tok.kind == "(":
            self._deeper(depth, tok)
            self.i += 1
            inner = self.expr(depth + 1)
            self.expect(")", "')'")
            return inner
        left = self.value()
        tok = self.peek()
        if tok is None:
            return _truthy(left)
        if tok.kind in _OPS:
            self.i += 1
            return _compare(_OPS[tok.kind], left, self.value())
        if tok.kind == "is":
            self.i += 1
            negate = self.accept("not") is not None
            null = self.take()
            if null.kind != "literal" or null.value is not None:
                raise WhereError(f"expected null after 'is{' not' if negate else ''}', found {null.text!r}", null.column)
            return _is_null(left, negate)
        if tok.kind == "not" or tok.kind == "in":
            self.i += 1
            negate = tok.kind == "not"
            if negate:
                self.expect("in", "'in' after 'not'")
            return _member(left, self.literal_list(), negate)
        return _truthy(left)

    def value(self) -> tuple[bool, Any]:
        """(is a field, path or literal value)."""
        tok = self.peek()
        if tok is None:
            raise WhereError("expected a field or a value, found the end of the expression", len(self.text) + 1)
        if tok.kind == "field":
            self.i += 1
            return True, tok.value
        if tok.kind == "literal":
            self.i += 1
            return False, tok.value
        raise WhereError(f"unexpected {tok.text!r}", tok.column)

    def literal_list(self) -> list[Any]:
        self.expect("[", "'[' starting a list")
        items: list[Any] = []
        if self.accept("]"):
            return items
        while True:
            tok = self.take()
            if tok.kind != "literal":
                raise WhereError(f"a list holds literals only, found {tok.text!r}", tok.column)
            if tok.value is None:
                raise WhereError("null in a list never matches (use 'is null')", tok.column)
            items.append(tok.value)
            if self.accept("]"):
                return items
            self.expect(",", "',' or ']'")

    def _deeper(self, depth: int, tok: _Token) -> None:
        if depth >= MAX_DEPTH:
            raise WhereError(f"nested deeper than {MAX_DEPTH} levels", tok.column)


# --- building the closures ------------------------------------------------------------------


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


def _operand(side: tuple[bool, Any]) -> Getter:
    is_field, value = side
    if is_field:
        return _getter(value)
    return lambda row: value


def _compare(op: Callable[[Any, Any], Any], left: tuple[bool, Any], right: tuple[bool, Any]) -> Predicate:
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


def _is_null(side: tuple[bool, Any], negate: bool) -> Predicate:
    get = _operand(side)
    if negate:
        return lambda row: get(row) is not None
    return lambda row: get(row) is None


def _member(side: tuple[bool, Any], items: list[Any], negate: bool) -> Predicate:
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


def _truthy(side: tuple[bool, Any]) -> Predicate:
    get = _operand(side)
    return lambda row: get(row) is True


def _all(parts: list[Predicate]) -> Predicate:
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


def _any(parts: list[Predicate]) -> Predicate:
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
