"""`where`: a small filter language over a row's fields, parsed here and never evaluated as Python.

    total > 1000 and store != 's001'
    kind in ['click', 'view'] or (amount >= 10.5 and not coupon is null)
    customer.country = "FR"                  -- dotted: a field inside a nested object
    `order total` > 0                        -- backquotes: a field name that is not a plain word
    customer.`home address`.city = 'Lyon'   -- in a dotted path too (a dot inside backquotes is part of the name)

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
closures (built by rtstream.where.predicates): the hot path does no parsing and no lookups beyond
the row's own.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator

from rtstream.where.predicates import Predicate, all_of, any_of, compare, is_null, member_of, truthy

MAX_LENGTH = 10_000  # characters of an expression; real ones are a line
MAX_DEPTH = 64  # nested parentheses and nots

_OPS: dict[str, Callable[[Any, Any], Any]] = {"=": operator.eq, "==": operator.eq, "!=": operator.ne,
                                              "<>": operator.ne, "<": operator.lt, "<=": operator.le,
                                              ">": operator.gt, ">=": operator.ge}
_KEYWORDS = {"and", "or", "not", "in", "is", "null", "true", "false"}
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<field>(?:[A-Za-z_][A-Za-z0-9_]*|`[^`]*`)(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|`[^`]*`))*)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op>==|!=|<>|<=|>=|=|<|>)
  | (?P<punct>[()\[\],])
""", re.VERBOSE | re.DOTALL)
_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|`([^`]*)`")  # one name of a dotted path, plain or backquoted
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


def _checked(text: str | None) -> str | None:
    if text is not None:
        compile_where(text)  # a WhereError is a ValueError: validate reports it with its column
    return text


# A config key holding a `where`: refused at load with the column of the problem.
WhereText = Annotated[str | None, AfterValidator(_checked)]


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
        elif kind == "field" and raw.lower() in _KEYWORDS:
            word = raw.lower()
            literal = {"null": None, "true": True, "false": False}
            out.append(_Token("literal", raw, literal[word], col) if word in literal else _Token(word, raw, None, col))
        elif kind == "field":  # a dotted path whose names may be backquoted: a.`b c`.d
            path = []
            for seg in _SEGMENT.finditer(raw):
                if seg.group() == "``":
                    raise WhereError("empty `quoted field`", col + seg.start())
                path.append(seg.group(1) if seg.group(1) is not None else seg.group())
            out.append(_Token("field", raw, tuple(path), col))
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
        return any_of(parts)

    def and_expr(self, depth: int) -> Predicate:
        parts = [self.not_expr(depth)]
        while self.accept("and"):
            parts.append(self.not_expr(depth))
        return all_of(parts)

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
            return truthy(left)
        if tok.kind in _OPS:
            self.i += 1
            return compare(_OPS[tok.kind], left, self.value())
        if tok.kind == "is":
            self.i += 1
            negate = self.accept("not") is not None
            null = self.take()
            if null.kind != "literal" or null.value is not None:
                raise WhereError(f"expected null after 'is{' not' if negate else ''}', found {null.text!r}", null.column)
            return is_null(left, negate)
        if tok.kind == "not" or tok.kind == "in":
            self.i += 1
            negate = tok.kind == "not"
            if negate:
                self.expect("in", "'in' after 'not'")
            return member_of(left, self.literal_list(), negate)
        return truthy(left)

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
