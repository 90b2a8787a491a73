"""Decoding a record's JSON with every integer kept exact.

orjson is exact for integers in [-2**63, 2**64 - 1] and turns anything larger into a float, so two
different 30-digit ids would become the same key. orjson stays the decoder and the validator of
every record (its errors, nesting limit and refusal of NaN/Infinity apply to all of them); only a
record whose bytes hold a number orjson cannot keep (a run of 20+ digits, or a minus and 19) is
decoded a second time with the standard library, whose integers are exact. Typical records never
take that path; the cost on them is one regular-expression scan (see bench figures in the commit).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError
# A run of 19 digits is looked for with translate + find (about 4x faster than a regular
# expression on a 200-byte record). Most such runs are harmless: a nanosecond timestamp has 19
# digits and fits in a u64; what orjson cannot hold has 20+ digits, or a minus and 19.
_DIGITS_TO_NUL = bytes(0 if 0x30 <= b <= 0x39 else b for b in range(256))  # valid JSON holds no NUL byte
_NUL_RUN = b"\x00" * 19
_NUL_RUN_20 = b"\x00" * 20
_orjson_loads = orjson.loads


def decode_json(raw: bytes | bytearray | memoryview | str) -> Any:
    """The JSON value in `raw`, integers of any size exact.

    Raises orjson.JSONDecodeError for anything orjson refuses (invalid JSON or UTF-8, NaN and
    Infinity literals, numbers out of the float range, nesting deeper than 1024).

    >>> decode_json(b'{"id": 123456789012345678901234567890}')
    {'id': 123456789012345678901234567890}
    """
    value = _orjson_loads(raw)
    if raw.__class__ is not bytes:
        raw = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    digits = raw.translate(_DIGITS_TO_NUL)
    at = digits.find(_NUL_RUN)
    if at < 0:
        return value
    if _NUL_RUN_20 in digits:
        return _exact(raw)
    while at >= 0:  # runs of exactly 19 digits: only a negative one can be past orjson's range
        if at and raw[at - 1] == 0x2D:
            return _exact(raw)
        at = digits.find(_NUL_RUN, at + 19)
    return value


def decoder_for(raws: Iterable[Any]) -> Callable[[Any], Any]:
    """The decoder for a whole batch of raw values: plain orjson.loads when no value holds a run of
    19 digits (one scan of the joined batch, about 5x cheaper per record than a scan each), else
    `decode_json`, which checks every record. Values that cannot be joined (None, str) get
    `decode_json`, which refuses them one by one."""
    try:
        joined = b"\n".join(raws)
    except (TypeError, BufferError):
        return decode_json
    return decode_json if _NUL_RUN in joined.translate(_DIGITS_TO_NUL) else _orjson_loads


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # unreachable after orjson's check; kept as a second lock


def _exact(raw: bytes) -> Any:
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise JSONDecodeError("nested too deeply to decode with exact integers", raw.decode("utf-8", "replace"),
                              0) from None
    except ValueError as exc:  # an integer past the interpreter's digit limit (4300), or a constant
        raise JSONDecodeError(f"cannot decode exactly: {exc}", raw.decode("utf-8", "replace"), 0) from None


def not_an_object(value: Any) -> str:
    """Why a record that is valid JSON but no object is refused, in JSON's words (`got null`)."""
    kind = ("null" if value is None else "a boolean" if isinstance(value, bool) else
            "a number" if isinstance(value, (int, float)) else "a string" if isinstance(value, str) else
            "an array" if isinstance(value, list) else type(value).__name__)
    return f"expected a JSON object, got {kind}"
