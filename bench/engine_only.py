"""The engine alone: W1 from memory through decode, windows and aggregates, into a null sink."""

from __future__ import annotations

import time
from typing import Any

from rtstream.engine.commit_rule import CommitTracker
from rtstream.engine.window_engine import WindowEngine
from rtstream.model.batch import Batch
from rtstream.model.record import Record
from rtstream.windows.aggregates import Aggregator, parse_aggregate


def engine_throughput(values: list[tuple[bytes, bytes]], truth: dict[Any, Any], batch: int = 5000) -> float:
    agg = Aggregator("user_id", [parse_aggregate("events", "count()"), parse_aggregate("spent", "sum(amount)")])
    engine = WindowEngine(size_ms=300_000, lateness_ms=10_000, idle_timeout_s=3600, time_mode="event",
                          time_field="ts", record_stages=[], aggregator=agg, tracker=CommitTracker(),
                          max_window_records=10)
    engine.assign(("w1", 0), 0)
    t0 = time.perf_counter()
    got: dict[Any, Any] = {}
    for i in range(0, len(values), batch):
        recs = [Record(v, i + j, None, k) for j, (k, v) in enumerate(values[i:i + batch])]
        engine.process(Batch("w1", 0, recs, i + len(recs)), 0.0)
        for em in engine.close_ready(0.0, 0):
            _collect(em, got)
    for em in engine.close_all():
        _collect(em, got)
    took = time.perf_counter() - t0
    if len(got) != len(truth):
        raise SystemExit(f"engine alone: {len(got)} results, expected {len(truth)}")
    return len(values) / took


def _collect(em: Any, got: dict[Any, Any]) -> None:
    for row in em.rows:
        got[(em.window.start_ms, row["user_id"])] = (row["events"], row["spent"])


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_scaling(checkpoints: tuple[int, ...] = (1_000_000, 10_000_000), users: int = 10_000,
                batch: int = 5000) -> list[tuple[int, float]]:
    """RSS of the engine after each checkpoint of records, W1-shaped, 10,000 keys, 5-minute windows,
    an hour of event time per million records; generated batch by batch, so only the engine's state
    stays in memory."""
    import random

    import orjson

    agg = Aggregator("user_id", [parse_aggregate("events", "count()"), parse_aggregate("spent", "sum(amount)")])
    engine = WindowEngine(size_ms=300_000, lateness_ms=10_000, idle_timeout_s=3600, time_mode="event",
                          time_field="ts", record_stages=[], aggregator=agg, tracker=CommitTracker(),
                          max_window_records=10)
    engine.assign(("rss", 0), 0)
    rnd = random.Random(7)
    base = 1_767_225_600_000
    out = []
    done = 0
    for target in checkpoints:
        while done < target:
            recs = []
            for j in range(batch):
                i = done + j
                doc = {"user_id": f"u{rnd.randrange(users)}", "ts": base + i * 3600 // 1000,
                       "amount": round(rnd.uniform(1, 500), 2)}
                recs.append(Record(orjson.dumps(doc), i))
            done += batch
            engine.process(Batch("rss", 0, recs, done), 0.0)
            for em in engine.close_ready(0.0, 0):
                engine.emitted(em)
        out.append((done, _rss_mb()))
    return out
