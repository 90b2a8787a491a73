"""Workload W1: JSON click events keyed by user, an hour of event time, deterministic by seed."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import orjson

BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
KINDS = ["view", "click", "cart", "buy", "search"]
WINDOW_MS = 300_000


def w1_values(n: int, users: int = 10_000, seed: int = 1) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs of about 70 bytes each, event times spread over an hour with jitter."""
    rnd = random.Random(seed)
    out = []
    span = 3_600_000
    for i in range(n):
        user = f"u{rnd.randrange(users)}"
        ts = BASE_MS + i * span // n + rnd.randint(-3000, 3000)
        doc = {"user_id": user, "ts": max(BASE_MS, ts), "amount": round(rnd.uniform(1, 500), 2),
               "kind": KINDS[rnd.randrange(5)]}
        out.append((user.encode(), orjson.dumps(doc)))
    return out


def reference(values: list[tuple[bytes, bytes]], lateness_ms: int = 10_000) -> dict[tuple[int, str], tuple[int, float]]:
    """(window start, user) -> (count, sum), computed plainly. The seeded jitter is far inside the lateness."""
    out: dict[tuple[int, str], list[Any]] = defaultdict(lambda: [0, 0.0])
    for _, raw in values:
        d = orjson.loads(raw)
        acc = out[(d["ts"] - d["ts"] % WINDOW_MS, d["user_id"])]
        acc[0] += 1
        acc[1] += d["amount"]
    return {k: (v[0], v[1]) for k, v in out.items()}
