"""Capped exponential backoff with jitter, the delay between attempts of a failing call."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Delay before retry number `attempt` (1-based): base * 2^(attempt-1), capped, +-20% jitter."""
    delay = min(cap, base * (2 ** min(attempt - 1, 30)))
    return max(0.0, delay * random.uniform(0.8, 1.2))
