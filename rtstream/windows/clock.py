"""Where a record's time comes from. It must survive a restart, so never the processing time."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from rtstream.errors import DecodeError


def epoch_ms(value: Any) -> int:
    """Epoch milliseconds from an event-time value.

    Numbers are read by magnitude: below 1e11 they are seconds, below 1e14 milliseconds, below 1e17
    microseconds, else nanoseconds (so 1700000000, 1700000000000 and 1700000000000000 agree).
    Strings are ISO-8601 (a missing offset means UTC) or a number in a string.
    """
    if isinstance(value, bool) or value is None:
        raise DecodeError(f"time value {value!r} is not a timestamp")
    if isinstance(value, (int, float)):
        return _from_number(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return _from_number(float(text))
        except ValueError:
            pass
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise DecodeError(f"time value {value!r} is neither a number nor ISO-8601") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return int(dt.timestamp() * 1000)
    raise DecodeError(f"time value {value!r} is not a timestamp")


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
