"""Where a record's time comes from. It must survive a restart, so never the processing time."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from rtstream.model.errors import DecodeError

# Times a window can be named by (ISO-8601 years 1..9999), with a year to spare for the window's end.
MIN_MS = -62_135_596_800_000
MAX_MS = 253_402_300_799_999 - 366 * 86_400_000


def epoch_ms(value: Any) -> int:
    """Epoch milliseconds from an event-time value.

    Numbers are read by magnitude: below 1e11 they are seconds, below 1e14 milliseconds, below 1e17
    microseconds, else nanoseconds (so 1700000000, 1700000000000 and 1700000000000000 agree).
    Strings are ISO-8601 (a missing offset means UTC) or a number in a string.
    """
    if isinstance(value, bool) or value is None:
        raise DecodeError(f"time value {value!r} is not a timestamp")
    if isinstance(value, (int, float)):
        return _in_range(_from_number(value), value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return _in_range(_from_number(float(text)), value)
        except ValueError:
            pass
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise DecodeError(f"time value {value!r} is neither a number nor ISO-8601") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return _in_range(int(dt.timestamp() * 1000), value)
    raise DecodeError(f"time value {value!r} is not a timestamp")


def _in_range(ms: int, value: Any) -> int:
    if not MIN_MS <= ms <= MAX_MS:
        raise DecodeError(f"time value {value!r} is out of range")
    return ms


def _from_number(x: float) -> int:
    if not math.isfinite(x):
        raise DecodeError(f"time value {x!r} is not finite")
    ax = abs(x)
    if ax < 1e11:
        return int(x * 1000)
    if ax < 1e14:
        return int(x)
    if ax < 1e17:
        return int(x // 1000)
    return int(x // 1_000_000)
