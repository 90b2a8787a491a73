"""Python sinks for the grouped-flush scenarios (tests/faults/test_group_flush.py); state in files under
GROUP_SINK_DIR so the daemon's thread and the test see the same."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def _dir() -> Path:
    return Path(os.environ["GROUP_SINK_DIR"])


def _store(records: list[dict[str, Any]]) -> None:
    with open(_dir() / "stored.jsonl", "a") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")


def refuses_u7(records: list[dict[str, Any]]) -> None:
    """Stores each session's rows, except u7's: those it can never take."""
    if any(r["user_id"] == "u7" for r in records):
        raise ConnectionError("u7 is not welcome here")
    _store(records)


def down_for_a_while(records: list[dict[str, Any]]) -> None:
    """Fails its 3rd to 6th calls (a destination restarting), stores the rest."""
    counter = _dir() / "calls"
    n = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(n))
    if 3 <= n <= 6:
        raise ConnectionError(f"restarting (call {n})")
    _store(records)
