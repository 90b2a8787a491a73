"""PostgreSQL dates and timestamps decoded without a failure on the values Python cannot hold.

asyncpg turns `date` / `timestamp` / `timestamptz` into Python's types, whose years run from 1 to
9999: a BC date or the year 10000 raised in the middle of a fetch (the whole page failed, for ever),
and `infinity` became 9999-12-31 without a word. These codecs (asyncpg's "tuple" format: the days
or microseconds since 2000-01-01) return Python values where they fit, and otherwise the exact
value as text: `0044-03-15 BC`, `10000-01-01T00:00:00Z`, `infinity`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

_Y2K = dt.date(2000, 1, 1)
_Y2K_ORDINAL = _Y2K.toordinal()
_CYCLE_DAYS = 146097  # 400 Gregorian years: the calendar repeats, so a far date is shifted by whole cycles
_DAY_US = 86_400_000_000
_INT32 = (-(2**31), 2**31 - 1)  # -infinity, infinity of a date
_INT64 = (-(2**63), 2**63 - 1)  # -infinity, infinity of a timestamp
_UTC = dt.UTC
_EPOCH = dt.datetime(2000, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=_UTC)


def _far_date(days: int) -> str:
    """The date `days` after 2000-01-01 as text, for years Python's date cannot hold (proleptic Gregorian, as PostgreSQL)."""
    ordinal = _Y2K_ORDINAL + days
    cycles = -((ordinal - 1) // _CYCLE_DAYS)
    d = dt.date.fromordinal(ordinal + cycles * _CYCLE_DAYS)
    year = d.year - 400 * cycles
    if year <= 0:
        return f"{1 - year:04d}-{d.month:02d}-{d.day:02d} BC"
    return f"{year:04d}-{d.month:02d}-{d.day:02d}"


def decode_date(value: tuple[int]) -> dt.date | str:
    days = value[0]
    if days in _INT32:
        return "infinity" if days > 0 else "-infinity"
    try:
        return _Y2K + dt.timedelta(days=days)
    except OverflowError:
        return _far_date(days)


def _decode(us: int, tz: bool) -> dt.datetime | str:
    if us in _INT64:
        return "infinity" if us > 0 else "-infinity"
    try:
        return (_EPOCH_UTC if tz else _EPOCH) + dt.timedelta(microseconds=us)
    except OverflowError:
        days, rest = divmod(us, _DAY_US)
        clock = (dt.datetime.min + dt.timedelta(microseconds=rest)).time().isoformat()
        date = _far_date(days)
        zone = "Z" if tz else ""
        return f"{date[:-3]}T{clock}{zone} BC" if date.endswith(" BC") else f"{date}T{clock}{zone}"


def decode_timestamp(value: tuple[int]) -> dt.datetime | str:
    return _decode(value[0], tz=False)


def decode_timestamptz(value: tuple[int]) -> dt.datetime | str:
    return _decode(value[0], tz=True)


def encode_date(value: Any) -> tuple[int]:
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, str):
        value = dt.date.fromisoformat(value)
    return ((value - _Y2K).days,)


def encode_timestamp(value: Any) -> tuple[int]:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    elif not isinstance(value, dt.datetime) and isinstance(value, dt.date):
        value = dt.datetime.combine(value, dt.time())
    if value.tzinfo is not None:
        value = value.astimezone(_UTC).replace(tzinfo=None)  # timestamp: the UTC wall clock
    return ((value - _EPOCH) // dt.timedelta(microseconds=1),)  # naive taken as UTC, as asyncpg does


encode_timestamptz = encode_timestamp  # both are microseconds since 2000-01-01 UTC on the wire


async def install(conn: Any) -> None:
    """An asyncpg pool's `init`: every connection decodes dates and timestamps as above."""
    for name, enc, dec in (("date", encode_date, decode_date),
                           ("timestamp", encode_timestamp, decode_timestamp),
                           ("timestamptz", encode_timestamptz, decode_timestamptz)):
        await conn.set_type_codec(name, schema="pg_catalog", encoder=enc, decoder=dec, format="tuple")
