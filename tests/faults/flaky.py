"""Misbehaving user functions for the fault scenarios; their state lives in files so it survives restarts."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

STATE = Path(os.environ.get("FLAKY_STATE", "/tmp/flaky"))


def _count(name: str) -> int:
    path = STATE / f"{name}.count"
    n = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(n))
    return n


def always_fails(window):
    raise RuntimeError("this stage never works")


def fails_twice(window):
    if _count("fails_twice") <= 2:
        raise RuntimeError(f"flaky, call {_count('fails_twice_seen')}")
    return None


def slow_sink(records):
    time.sleep(float(os.environ.get("SLOW_SINK_SECONDS", "2")))


def sink_fails_three_times(records):
    if _count("sink_fails") <= 3:
        raise ConnectionError("database is restarting")
    with open(STATE / "stored.jsonl", "a") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
