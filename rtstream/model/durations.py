"""Durations ("250ms", "1m30s") and the cron schedules that stand for a window size."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_HINT = "expected e.g. 250ms, 30s, 5m, 1m30s, 1h"
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
# Event times are refused outside the years 1 to 9998, so no duration means anything beyond that
# span; inf and NaN (TOML has both literals) would end in a traceback when turned into milliseconds.
MAX_SECONDS = 10_000 * 365.25 * 86_400


def parse_duration(value: object) -> float:
    """Seconds from "250ms", "90s", "5m", "1m30s", "1h", "1d"; a bare 0 is zero.

    Any other number without a unit is refused: `size = 5` read as seconds was a guess a user could
    not see (five minutes, as in a cron DAG's interval, was as likely meant)."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r} ({_HINT})")
    if isinstance(value, (int, float)):
        if value < 0:  # wrong whatever its unit
            raise ValueError(f"invalid duration {value!r} (must not be negative)")
        if value == 0:
            return 0.0
        _bounded(float(value) if isinstance(value, float) or value <= MAX_SECONDS else float("inf"), value)
        raise ValueError(f"a duration needs a unit, e.g. 5s, 5m, 1h (got {_shown(value)})")
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r} ({_HINT})")
    text = value.strip().replace(" ", "")
    if _NUMBER.fullmatch(text):
        if float(text) == 0:
            return 0.0
        raise ValueError(f"a duration needs a unit, e.g. 5s, 5m, 1h (got {_shown(value)})")
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"invalid duration {value!r} ({_HINT})")
    return _bounded(total, value)


def _shown(value: object) -> str:
    return repr(value) if len(repr(value)) < 40 else repr(value)[:36] + "..."


def _bounded(seconds: float, value: object) -> float:
    if not seconds <= MAX_SECONDS:  # NaN too
        why = "not a number" if seconds != seconds else "at most 10000 years"
        raise ValueError(f"invalid duration {_shown(value)} ({why})")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest spelling parse_duration reads back: 300 -> "5m", 90 -> "1m30s"."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, ms = divmod(ms, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


_CRON_NAMES = {"@hourly": 3600.0, "@daily": 86400.0, "@midnight": 86400.0}


def schedule_to_size(expr: str) -> float:
    """Window size in seconds for a cron expression that repeats at a fixed step.

    Only schedules that tile the day evenly mean a window size: "*/5 * * * *" (every 5 minutes),
    "* * * * *", "0 * * * *", "0 */2 * * *", "0 0 * * *" and @hourly / @daily.
    """
    text = " ".join(expr.split())
    if text in _CRON_NAMES:
        return _CRON_NAMES[text]
    fields = text.split(" ")
    refuse = ValueError(
        f"unsupported schedule {expr!r}: only fixed-step schedules map to a window size "
        "(e.g. '*/5 * * * *', '0 * * * *', '@hourly'); use window.size for anything else"
    )
    if len(fields) != 5 or fields[2:] != ["*", "*", "*"]:
        raise refuse
    minute, hour = fields[0], fields[1]
    if hour == "*":
        if minute == "*":
            return 60.0
        step = _step(minute)
        if step and 60 % step == 0:
            return step * 60.0
        if minute == "0":
            return 3600.0
        raise refuse
    if minute == "0":
        if hour == "0":
            return 86400.0
        step = _step(hour)
        if step and 24 % step == 0:
            return step * 3600.0
    raise refuse


def _step(field: str) -> int | None:
    if field.startswith("*/") and field[2:].isdigit() and int(field[2:]) > 0:
        return int(field[2:])
    return None


def _validate(value: object) -> float:
    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(_validate)]
"""A duration config field, held as seconds."""


def _validate_signed(value: object) -> float:
    """A duration that may be negative: "-5s" (an interval join's bounds)."""
    if isinstance(value, str) and value.strip().startswith("-"):
        return -parse_duration(value.strip()[1:])
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        return -parse_duration(-value)  # `-5` is refused for its missing unit, not for its sign
    return parse_duration(value)


SignedDuration = Annotated[float, BeforeValidator(_validate_signed)]
"""A duration config field that may be negative, held as seconds."""
