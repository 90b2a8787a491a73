"""Session windows and checkpoints on W1, from memory: what they cost next to tumbling windows."""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from rtstream.engine.commit_rule import CommitTracker
from rtstream.engine.window_engine import WindowEngine
from rtstream.model.batch import Batch
from rtstream.model.record import Record
from rtstream.runtime.checkpoint_store import CheckpointStore
from rtstream.windows.aggregates import Aggregator, parse_aggregate

PK = ("w1", 0)


def _engine(**window: Any) -> WindowEngine:
    agg = Aggregator("user_id", [parse_aggregate("events", "count()"), parse_aggregate("spent", "sum(amount)")])
    e = WindowEngine(lateness_ms=10_000, idle_timeout_s=3600, time_mode="event", time_field="ts", record_stages=[],
                     aggregator=agg, tracker=CommitTracker(), max_window_records=10, **window)
    e.assign(PK, 0)
    return e


def _feed(e: WindowEngine, values: list[tuple[bytes, bytes]], batch: int = 5000) -> list[Any]:
    out = []
    for i in range(0, len(values), batch):
        recs = [Record(v, i + j, None, k) for j, (k, v) in enumerate(values[i:i + batch])]
        e.process(Batch("w1", 0, recs, i + len(recs)), 0.0)
        e.tracker.processed(PK, i + len(recs))
        out += e.close_ready(0.0, 0)
    return out


def session_reference(values: list[tuple[bytes, bytes]], gap_ms: int) -> tuple[int, int]:
    """(number of sessions, records in them), computed plainly."""
    times: dict[str, list[int]] = defaultdict(list)
    for _, raw in values:
        d = orjson.loads(raw)
        times[d["user_id"]].append(d["ts"])
    sessions = 0
    for ts in times.values():
        ts.sort()
        sessions += 1 + sum(1 for a, b in zip(ts, ts[1:], strict=False) if b - a >= gap_ms)
    return sessions, len(values)


def session_throughput(values: list[tuple[bytes, bytes]], gap_ms: int = 300_000) -> float:
    e = _engine(size_ms=gap_ms, session_gap_ms=gap_ms)
    t0 = time.perf_counter()
    out = _feed(e, values) + e.close_all()
    took = time.perf_counter() - t0
    got = (sum(len(em.rows) for em in out), sum(r["events"] for em in out for r in em.rows))
    want = session_reference(values, gap_ms)
    if got != want:
        raise SystemExit(f"sessions: {got} (sessions, records), expected {want}")
    return len(values) / took


def checkpoint_cost(values: list[tuple[bytes, bytes]]) -> dict[str, float]:
    """One-hour windows over W1's 10,000 keys, checkpointed once everything is read (the hour still open)."""
    e = _engine(size_ms=7_200_000)  # two hours: W1's hour never closes
    _feed(e, values)
    t0 = time.perf_counter()
    position, blob = e.snapshot(PK)  # type: ignore[misc]
    snap_ms = (time.perf_counter() - t0) * 1000
    with tempfile.TemporaryDirectory() as tmp:
        store = CheckpointStore(Path(tmp) / "cp.db", "bench")
        store.open()
        t0 = time.perf_counter()
        store.save([("w1", 0, position, blob)])
        save_ms = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        (pos, saved), = store.load("w1", [0]).values()
        again = _engine(size_ms=7_200_000)
        again.restore(PK, pos, saved, 0.0)
        restore_ms = (time.perf_counter() - t0) * 1000
        store.close()
    if sorted(r["events"] for em in again.close_all() for r in em.rows) != \
            sorted(r["events"] for em in e.close_all() for r in em.rows):
        raise SystemExit("checkpoint: the restored windows differ")
    return {"bytes": len(blob), "snapshot_ms": snap_ms, "save_ms": save_ms, "restore_ms": restore_ms}
