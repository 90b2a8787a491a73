"""The constants of a DAG file, read without running it, for `rtstream import-dag`.

Literals, arithmetic on numbers, timedelta(...), datetime(...), dict(...), and names bound to any of
these. Everything that could run away is bounded: a name defined through itself is refused with
its line, as is a value out of range (timedelta(days=10**10), datetime("2022"), 10**10**10).
"""

from __future__ import annotations

import ast
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

MAX_NAME_DEPTH = 50  # a name bound to a name bound to a name ...
MAX_INT_BITS = 4096  # arithmetic in a DAG file's constants stops here (10**10**10 would never end)


class DagRefused(SyntaxError):
    """A DAG file import-dag cannot read: a self-referencing name, a value out of range, nesting too
    deep. A SyntaxError, so it is reported like a file that does not parse: one line, exit 2."""

    def __init__(self, path: Path, line: int | None, message: str):
        super().__init__(message, (str(path), line or 0, 0, None))

    def __str__(self) -> str:
        return f"line {self.lineno}: {self.msg}" if self.lineno else str(self.msg)


class DagValues:
    """Constants of a DAG file, read without running it: literals, arithmetic on numbers,
    timedelta(...), datetime(...), dict(...), and names bound to any of these."""

    _OPS: dict[type, Any] = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
                             ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b,
                             ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b}

    def __init__(self, path: Path, names: dict[str, ast.AST]):
        self.path = path
        self.names = names
        self.resolving: list[str] = []
        self.memo: dict[str, Any] = {}

    def refuse(self, node: ast.AST, message: str) -> DagRefused:
        return DagRefused(self.path, getattr(node, "lineno", None), message)

    def of(self, node: ast.AST | None) -> Any:
        if node is None:
            return None
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Dict):
            out = {}
            for k, v in zip(node.keys, node.values, strict=True):
                if k is not None:
                    kv = self.of(k)
                    if isinstance(kv, (str, int, float, bool)) or kv is None:
                        out[kv] = v
            return out
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.of(e) for e in node.elts]
        if isinstance(node, (ast.BinOp, ast.UnaryOp)):
            return self._arithmetic(node, 0)
        if isinstance(node, ast.Call):
            fname = call_name(node)
            if fname in ("timedelta", "datetime.timedelta"):
                return self._timedelta(node)
            if fname in ("datetime", "datetime.datetime", "pendulum.datetime"):
                return self._datetime(node)
            if fname == "dict" and not node.args:
                return {k.arg: k.value for k in node.keywords if k.arg}
        return None

    def plain(self, node: ast.AST | None) -> Any:
        """The value of `node` with every dict and list resolved all the way down (for writing it
        into a config); raises ValueError where any part of it is not a constant."""
        value = self.of(node)
        if value is None and not (isinstance(node, ast.Constant) and node.value is None):
            raise ValueError(f"line {getattr(node, 'lineno', '?')}: not a constant")
        return self._deep(value)

    def _deep(self, value: Any) -> Any:
        if isinstance(value, ast.AST):
            return self.plain(value)
        if isinstance(value, dict):
            return {k: self._deep(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._deep(v) for v in value]
        return value

    def _name(self, node: ast.Name) -> Any:
        name = node.id
        if name in self.memo:
            return self.memo[name]
        if name not in self.names:
            return None
        if name in self.resolving:
            chain = " -> ".join([*self.resolving[self.resolving.index(name):], name])
            raise self.refuse(node, f"the name {name!r} is defined through itself ({chain})")
        if len(self.resolving) >= MAX_NAME_DEPTH:
            raise self.refuse(node, f"names defined through more than {MAX_NAME_DEPTH} other names")
        self.resolving.append(name)
        try:
            value = self.memo[name] = self.of(self.names[name])
        finally:
            self.resolving.pop()
        return value

    def _arithmetic(self, node: ast.AST, depth: int) -> Any:
        """+ - * / // % ** on numbers, with every intermediate result kept small."""
        if depth > MAX_NAME_DEPTH:
            raise self.refuse(node, "an expression nested too deeply to read")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = self._arithmetic(node.operand, depth + 1)
            return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
        if isinstance(node, ast.BinOp):
            a, b = self._arithmetic(node.left, depth + 1), self._arithmetic(node.right, depth + 1)
            if a is None or b is None:
                return None
            if isinstance(node.op, ast.Pow):
                if isinstance(b, int) and isinstance(a, int) and abs(a) > 1 and \
                        abs(b) * abs(a).bit_length() > MAX_INT_BITS:
                    raise self.refuse(node, f"{show_value(a)} ** {show_value(b)} is out of range")
                op: Any = lambda x, y: x ** y  # noqa: E731
            else:
                op = self._OPS.get(type(node.op))
            if op is None:
                return None
            try:
                result = op(a, b)
            except (ArithmeticError, ValueError, TypeError) as exc:
                raise self.refuse(node, f"cannot compute {ast.unparse(node)[:80]}: {exc}") from None
            if isinstance(result, complex) or (isinstance(result, int) and result.bit_length() > MAX_INT_BITS) or \
                    (isinstance(result, float) and result - result != 0):
                raise self.refuse(node, f"{ast.unparse(node)[:80]} is out of range")
            return result
        v = self.of(node)
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    def _timedelta(self, node: ast.Call) -> timedelta:
        allowed = ("days", "seconds", "microseconds", "milliseconds", "minutes", "hours", "weeks")
        args = [self._number(a, node) for a in node.args]
        kwargs = {}
        for k in node.keywords:
            if k.arg not in allowed:
                raise self.refuse(node, f"timedelta() takes no {k.arg!r} (one of {', '.join(allowed)})")
            kwargs[k.arg] = self._number(k.value, node)
        try:
            return timedelta(*args, **kwargs)
        except (OverflowError, ValueError, TypeError):
            raise self.refuse(node, f"{ast.unparse(node)[:80]} is out of range (at most "
                                    f"{timedelta.max.days:,} days)") from None

    def _datetime(self, node: ast.Call) -> str:
        order = ("year", "month", "day", "hour", "minute", "second")
        values: dict[str, Any] = dict(zip(order, (self._number(a, node, whole=True) for a in node.args[:6]),
                                          strict=False))
        for k in node.keywords:
            if k.arg in order:
                values[k.arg] = self._number(k.value, node, whole=True)
        try:
            when = datetime(**values)  # noqa: DTZ001 - a naive date only checked, then written as UTC
        except (OverflowError, ValueError, TypeError) as exc:
            raise self.refuse(node, f"{ast.unparse(node)[:80]} is not a valid date ({exc})") from None
        return f"{when.isoformat()}Z"  # year padded to four digits, as ISO-8601 wants

    def _number(self, arg: ast.AST, call: ast.Call, whole: bool = False) -> Any:
        v = self._arithmetic(arg, 0)
        ok = isinstance(v, int) if whole else isinstance(v, (int, float))
        if v is None or isinstance(v, bool) or not ok:
            shown = self.of(arg) if isinstance(arg, (ast.Constant, ast.Name)) else ast.unparse(arg)[:40]
            kind = "whole numbers" if whole else "numbers"
            raise self.refuse(call, f"{call_name(call)}() needs {kind} (got {show_value(shown)})")
        return v


def show_value(v: Any) -> str:
    if isinstance(v, int) and v.bit_length() > 64:
        return f"an integer of {len(str(abs(v))) if v.bit_length() < 10_000 else 'many'} digits"
    return repr(v)[:60]


def call_name(node: ast.Call) -> str:
    f = node.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        base = f.value.id if isinstance(f.value, ast.Name) else "?"
        return f"{base}.{f.attr}"
    return "?"


def keyword_arg(call: ast.Call, name: str, pos: int | None = None) -> ast.AST | None:
    for k in call.keywords:
        if k.arg == name:
            return k.value
    if pos is not None and len(call.args) > pos:
        return call.args[pos]
    return None
