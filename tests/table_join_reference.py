"""The reference of an event-time table_join (tests/unit/engine/test_temporal_join.py, the daemon and
Kafka tests): per stream row, its key's last change at or before the row's time, computed plainly."""

from __future__ import annotations

from typing import Any


def as_of(changes: list[Any], clicks: list[dict[str, Any]], how: str, ttl_ms: int | None = None,
          key: str = "user", names: tuple[str, ...] = ("name",)) -> list[dict[str, Any]]:
    """`changes` in changelog order: a dict is a row, a str a delete of that key (at the time of the
    latest change before it); a row deleted or older than `ttl_ms` at the click's time is not met."""
    versions: list[tuple[Any, int | None, dict[str, Any] | None]] = []
    last = None
    for c in changes:
        if isinstance(c, dict):
            last = c["ts"] if last is None else max(last, c["ts"])
            versions.append((c[key], c["ts"], c))
        else:
            versions.append((c, last, None))
    out = []
    for k in clicks:
        mine = [(ts, i, v) for i, (u, ts, v) in enumerate(versions) if u == k[key] and ts is not None and ts <= k["ts"]]
        v = max(mine, key=lambda m: (m[0], m[1]))[2] if mine else None
        if v is not None and ttl_ms is not None and k["ts"] - v["ts"] > ttl_ms:
            v = None
        if v is not None:
            out.append({**k, "left_ts": k["ts"], "right_ts": v["ts"], **{n: v[n] for n in names}})
        elif how == "left":  # the join's one row shape: the table's fields null (rtstream.engine.join_rows)
            out.append({**k, "left_ts": k["ts"], "right_ts": None, **{n: None for n in names}})
    return out
