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


def session_truth(events: Iterable[dict[str, Any]], gap_ms: int, key: str,
                  amount: str = "amount") -> list[tuple[int, int, Any, int, float]]:
    """Sorted (start ms, end ms, key, count, sum): per key, cut wherever neighbours are gap or more apart."""
    by_key: dict[Any, list[tuple[int, float]]] = defaultdict(list)
    for e in events:
        by_key[e[key]].append((e["ts"], e[amount]))
    out = []
    for k, items in by_key.items():
        items.sort()
        run = [items[0]]
        for item in items[1:]:
            if item[0] - run[-1][0] >= gap_ms:
                out.append((run[0][0], run[-1][0] + gap_ms, k, len(run), sum(v for _, v in run)))
                run = []
            run.append(item)
        out.append((run[0][0], run[-1][0] + gap_ms, k, len(run), sum(v for _, v in run)))
    return sorted(out)
