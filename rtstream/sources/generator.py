"""A synthetic clickstream, deterministic by seed and position, for demos, tests and benchmarks.

Record i's content and time depend only on (seed, i): time is `start + i / rate`, so a restart that
resumes at the committed position rebuilds exactly the same windows. With `realtime = true` records
are released as the wall clock reaches their time (catching up after a pause); with `false` they are
produced as fast as the pipeline takes them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from pydantic import Field, field_validator

from rtstream.model.batch import Batch
from rtstream.model.record import Record
from rtstream.model.registry import register
from rtstream.sources.base import SourceConfig
from rtstream.sources.clocked import ClockedSource, checked_start

PAGES = ["/", "/search", "/product", "/cart", "/checkout", "/account", "/help"]
KINDS = ["view", "click", "add_to_cart", "purchase", "search"]
_CHUNK = 1024


class GeneratorConfig(SourceConfig):
    rate: float = Field(default=10.0, gt=0, description="records per second of event time")
    count: int | None = Field(default=None, ge=0, description="stop after this many (a finite run)")
    seed: int = Field(default=42, description="the same seed and start give the same records")
    users: int = Field(default=100, ge=1, description="distinct user_id values")
    realtime: bool = Field(default=True, description="release records as the clock reaches their time; false: "
                           "as fast as the pipeline takes them")
    start: str | int | None = Field(default=None, description="the first record's time; default: when first "
                                    "started (kept in the state dir) if realtime, else 2026-01-01T00:00:00Z")
    batch_size: int = Field(default=1000, ge=1, description="records per batch at most")

    @field_validator("start")
    @classmethod
    def _start(cls, value: Any) -> Any:
        return checked_start(value)


def make_record(users: int, ts: int, rng: random.Random) -> dict[str, Any]:
    kind = KINDS[rng.randrange(len(KINDS))]
    return {
        "user_id": f"u{rng.randrange(users)}",
        "ts": ts,
        "page": PAGES[rng.randrange(len(PAGES))],
        "kind": kind,
        "amount": round(rng.uniform(0.5, 200.0), 2),
    }


@register("source", "generator")
class GeneratorSource(ClockedSource):
    Config = GeneratorConfig

    @property
    def finite(self) -> bool:
        return self.config.count is not None

    async def start(self) -> None:
        self.resume()

    def ts_of(self, i: int) -> int:
        return self.start_ms + int(i * 1000 / self.config.rate)

    async def batches(self) -> AsyncIterator[Batch]:
        cfg = self.config
        i = self.position
        rng = random.Random(f"{cfg.seed}:{i // _CHUNK}")
        for _ in range(i % _CHUNK):
            make_record(cfg.users, 0, rng)
        while cfg.count is None or i < cfg.count:
            upto = i + cfg.batch_size
            if cfg.count is not None:
                upto = min(upto, cfg.count)
            if cfg.realtime:
                due = int((time.time() * 1000 - self.start_ms) * cfg.rate / 1000) + 1
                if due <= i:
                    await asyncio.sleep(max(0.001, (self.ts_of(i) - time.time() * 1000) / 1000))
                    continue
                upto = min(upto, due)
            records = []
            while i < upto:
                if i % _CHUNK == 0:
                    rng = random.Random(f"{cfg.seed}:{i // _CHUNK}")
                ts = self.ts_of(i)
                records.append(Record(make_record(cfg.users, ts, rng), i, ts))
                i += 1
            yield Batch(self.name, 0, records, i, decoded=True)
            if not cfg.realtime:
                await asyncio.sleep(0)

    def describe(self) -> str:
        c = self.config
        n = f"{c.count} records" if c.count is not None else "endless"
        return f"generator: {n} at {c.rate:g}/s{' (realtime)' if c.realtime else ''}, seed {c.seed}"
