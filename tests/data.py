"""Test input: synthetic events and JSON-lines files."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson

BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def make_events(n: int, span_s: int, seed: int = 7, users: int = 40) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    events = []
    for i in range(n):
        ts = BASE_MS + int(i * (span_s - 1) * 1000 / n) + rnd.randint(0, 900)
        events.append({"user_id": f"u{rnd.randrange(users)}", "ts": ts, "amount": round(rnd.uniform(1, 100), 2),
                       "kind": rnd.choice(["view", "click", "purchase"]), "page": rnd.choice(["/", "/cart"])})
    return events


def write_lines(path: Path, items: list[Any], mode: str = "wb") -> None:
    with open(path, mode) as fh:
        for item in items:
            fh.write(item if isinstance(item, bytes) else orjson.dumps(item))
            fh.write(b"\n")
