"""An independent computation of windowed aggregates, written plainly to check the engine against."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tumbling_truth(events: Iterable[dict[str, Any]], size_s: int, key: str, amount: str = "amount") -> dict[tuple[str, str], dict[str, Any]]:
    """(window_start, key) -> {"events": n, "spent": sum, "biggest": max, "users"...} for ms timestamps."""
    out: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: {"events": 0, "spent": 0.0, "biggest": None})
    size = size_s * 1000
    for e in events:
        start = (e["ts"] // size) * size
        row = out[(iso(start), e[key])]
        row["events"] += 1
        row["spent"] += e[amount]
        row["biggest"] = e[amount] if row["biggest"] is None else max(row["biggest"], e[amount])
    return dict(out)
