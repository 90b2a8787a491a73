"""Dead letters: every record that could not be used, with why, where from, and which stage.

A dead letter must never fail and never be large, whatever the record held: the value is stored as
a bounded excerpt (at most `EXCERPT_BYTES` of encoded JSON), made by walking the value with a
budget rather than by encoding it whole, so a 50 MB field costs a 4 KiB line, a value nested past
orjson's 254 levels or holding an int beyond 64 bits is written all the same, and an object of any
type is shown by its (cut) `str`. A value that had to be cut is stored as the excerpt's JSON text
(a string) with `"value_truncated": true`; one that fits is stored as itself. `detail` is cut to
`DETAIL_CHARS`. The reason, source, partition and offset are on every letter.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import orjson

from rtstream.support.secrets import redact

EXCERPT_BYTES = 4096  # encoded JSON of a letter's value, at most
DETAIL_CHARS = 1000  # of a letter's detail
LOG_DETAIL_CHARS = 300  # of the detail quoted in the warning log line
MAX_DEPTH = 32  # levels of nesting kept in an excerpt; deeper ones are cut
_CUT = "…"
_INT64 = (-(2**63), 2**64 - 1)  # what orjson encodes as a number


@dataclass(slots=True)
class DeadLetter:
    reason: str  # decode | no_time | late | invalid | stage_error | window_full | sink_rejected | sink_failed
    detail: str
    source: str | None = None
    partition: Hashable = None
    offset: int | None = None
    stage: str | None = None
    window: tuple[int, int] | None = None
    value: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """One JSON line (without the newline), a few KB at most; never raises."""
        try:
            return self._encode()
        except Exception as exc:  # noqa: BLE001 - a dead letter is the last stop: it must be written
            return _fallback(self, exc)

    def _encode(self) -> bytes:
        doc: dict[str, Any] = {
            "reason": bounded_text(self.reason, 100),
            "detail": bounded_text(redact(self.detail), DETAIL_CHARS),  # a sink's error may quote its URL
            "source": bounded_text(self.source, 200) if self.source is not None else None,
            "partition": partition_label(self.partition),
            "offset": self.offset if _is_int64(self.offset) else bounded_text(self.offset, 100),
            "stage": bounded_text(self.stage, 200) if self.stage is not None else None,
            "at": round(time.time(), 3),
        }
        if self.window is not None:
            from rtstream.model.window import iso_utc

            doc["window_start"], doc["window_end"] = iso_utc(self.window[0]), iso_utc(self.window[1])
        doc["value"], cut = excerpt(self.value)
        if cut:
            doc["value_truncated"] = True
        for key, val in list(self.extra.items())[:20]:
            doc[bounded_text(key, 100)] = excerpt(val, 512)[0]
        return orjson.dumps(doc)


def excerpt(value: Any, limit: int = EXCERPT_BYTES) -> tuple[Any, bool]:
    """A JSON-safe copy of `value` whose encoding fits in `limit` bytes, and whether anything was cut.

    Cut values come back as their excerpt's JSON text (a string), so a reader sees at once that it
    is not the record itself.

    >>> excerpt({"a": [1, 2]})
    ({'a': [1, 2]}, False)
    >>> excerpt("x" * 10, limit=8)
    ('"xxx…"', True)
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = value[:limit].tobytes() if isinstance(value, memoryview) else bytes(value[:limit])
        text = raw.decode("utf-8", errors="backslashreplace")
        if len(value) <= limit and len(orjson.dumps(text)) <= limit:
            return text, False
        return _fit(text, limit), True
    walker = _Walker(limit)
    safe = walker.walk(value, 0)
    encoded = orjson.dumps(safe)
    if len(encoded) <= limit:
        return (encoded.decode() if walker.cut else safe), walker.cut
    return _cut_utf8(encoded, limit - len(_CUT.encode())) + _CUT, True


def _fit(text: str, limit: int) -> str:
    """`text` cut (marked) so that its JSON encoding, escapes included, fits in `limit` bytes."""
    text = text[:limit]
    while text and len(orjson.dumps(text + _CUT)) > limit:
        text = text[:len(text) * 3 // 4]
    return text + _CUT


class _Walker:
    """Copies a value into plain JSON types while a byte budget lasts; marks what it had to cut.

    The budget counts roughly the encoded size, so the walk stops early on huge or deep values and
    never touches more than about `limit` bytes of them.
    """

    __slots__ = ("budget", "cut")

    def __init__(self, limit: int):
        self.budget = limit
        self.cut = False

    def walk(self, v: Any, depth: int) -> Any:
        if self.budget <= 0:
            self.cut = True
            return _CUT
        if v is None or v is True or v is False:
            self.budget -= 5
            return v
        if isinstance(v, str):
            return self._str(v)
        if isinstance(v, int):
            if _is_int64(v):
                self.budget -= 20
                return int(v)
            self.cut = True  # beyond what JSON readers (and orjson) take as a number
            return self._str(_big_int(v))
        if isinstance(v, float):
            self.budget -= 24
            return v
        if isinstance(v, (bytes, bytearray, memoryview)):
            text, cut = excerpt(v, max(self.budget, 8))
            self.cut |= cut
            self.budget -= len(text) + 2
            return text
        if isinstance(v, dict):
            return self._container(v.items(), depth, pairs=True)
        if isinstance(v, (list, tuple, set, frozenset)):
            return self._container(v, depth, pairs=False)
        return self._str(_safe_str(v, self.budget))

    def _str(self, s: str) -> str:
        room = max(0, self.budget - 2 - len(_CUT.encode()))  # the quotes and the mark
        if len(s) > room:
            self.cut = True
            s = s[:room] + _CUT
        s = _utf8_safe(s)
        self.budget -= len(s) + 2
        return s

    def _container(self, items: Any, depth: int, pairs: bool) -> Any:
        if depth >= MAX_DEPTH:
            self.cut = True
            self.budget -= 3
            return _CUT
        self.budget -= 2
        out: Any = {} if pairs else []
        for item in items:
            if self.budget <= 0:
                self.cut = True
                if not pairs:
                    out.append(_CUT)
                else:
                    out[_CUT] = _CUT
                break
            if pairs:
                k, val = item
                key = k if isinstance(k, str) else _safe_str(k, 200)
                key = self._str(key)
                out[key] = self.walk(val, depth + 1)
            else:
                out.append(self.walk(item, depth + 1))
            self.budget -= 1
        return out


def _is_int64(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and _INT64[0] <= v <= _INT64[1]


def _big_int(v: int) -> str:
    if v.bit_length() > 4000:  # str() of it would be slow (and refused past 4300 digits)
        return f"<int of {v.bit_length()} bits>"
    return str(v)


def _safe_str(v: Any, limit: int) -> str:
    try:
        s = str(v)
    except Exception:  # noqa: BLE001 - a value's __str__ may do anything
        s = f"<{type(v).__name__}>"
    return s[:max(limit, 0) + 1]


def bounded_text(v: Any, limit: int) -> str:
    s = v if isinstance(v, str) else _safe_str(v, limit)
    return _utf8_safe(s if len(s) <= limit else s[:limit] + _CUT)


def _utf8_safe(s: str) -> str:
    """`s`, with lone surrogates (which no UTF-8 encoder takes) spelled out as escapes."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return s.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return s


def _cut_utf8(encoded: bytes, limit: int) -> str:
    return encoded[:max(limit, 0)].decode("utf-8", errors="ignore")


def _fallback(d: DeadLetter, exc: Exception) -> bytes:
    """The letter without its value, when even the excerpt could not be made."""
    doc = {"reason": bounded_text(d.reason, 100), "detail": bounded_text(redact(d.detail), DETAIL_CHARS),
           "source": bounded_text(d.source, 200) if d.source is not None else None,
           "partition": bounded_text(partition_label(d.partition), 200),
           "offset": d.offset if _is_int64(d.offset) else None,
           "stage": bounded_text(d.stage, 200) if d.stage is not None else None, "at": round(time.time(), 3),
           "value": bounded_text(f"<value not encodable: {type(exc).__name__}: {_safe_str(exc, 200)}>", 300),
           "value_truncated": True}
    return orjson.dumps(doc)


def partition_label(p: Hashable) -> Any:
    if p is None or isinstance(p, str) or _is_int64(p):
        return p if not isinstance(p, str) else bounded_text(p, 200)
    topic, part = getattr(p, "topic", None), getattr(p, "partition", None)
    return bounded_text(f"{topic}:{part}" if topic is not None else _safe_str(p, 200), 200)


