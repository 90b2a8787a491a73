"""Writing TOML by hand, safely: every key, string and comment quoted or escaped.

`rtstream import-dag` writes a config from ids and text found in someone's DAG file; a task_id
holding `]` and a newline must stay one key, never become a table of its own.
"""

from __future__ import annotations

import re

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}


def string(s: str) -> str:
    """A TOML basic string holding exactly `s` (control characters escaped)."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\uFFFD")  # a lone surrogate is no Unicode scalar value: TOML cannot hold it
        elif not ch.isprintable():  # every control character, and invisible ones a reader should see
            out.append(f"\\u{code:04X}" if code < 0x10000 else f"\\U{code:08X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def key(s: str) -> str:
    """A key: bare when TOML allows it, quoted otherwise (`a.b` stays one key, not a table in a table)."""
    return s if _BARE_KEY.match(s) else string(s)


def table(*path: str) -> str:
    """`[sources."my task"]` for table("sources", "my task")."""
    return "[" + ".".join(key(p) for p in path) + "]"


def comment(text: str) -> str:
    """`# text` on one line, whatever `text` holds: line breaks and control characters are escaped."""
    return "# " + "".join(ch if ch.isprintable() or ch == "\t" else ascii(ch)[1:-1] for ch in text)


def inline(value: object) -> str | None:
    """A TOML inline value for a plain Python value (str, int, float, bool, lists and dicts of them),
    or None when TOML cannot hold it (None, a NaN, any other object)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if -(2**63) <= value < 2**63 else None
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else None
    if isinstance(value, str):
        return string(value)
    if isinstance(value, (list, tuple)):
        items = [inline(v) for v in value]
        return None if any(i is None for i in items) else "[" + ", ".join(items) + "]"  # type: ignore[arg-type]
    if isinstance(value, dict):
        pairs = [(k, inline(v)) for k, v in value.items()]
        if any(not isinstance(k, str) or v is None for k, v in pairs):
            return None
        return "{ " + ", ".join(f"{key(k)} = {v}" for k, v in pairs) + " }" if pairs else "{}"
    return None
