"""`type = "nexmark"`: the Nexmark benchmark's persons, auctions and bids (rtstream.model.nexmark).

Event i depends only on (seed, i) and its time is `start + i / rate` on the generator's clock, so a
restart that resumes at the committed position rebuilds the same windows, as with the `generator`
source. `only = ["bid"]` hands over the bids alone and skips making the rest (positions still count
every event, so ids and times are those of the whole stream); a `where` on `kind` gives the same
records but pays for making them.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections.abc import AsyncIterator
from operator import attrgetter
from typing import Any, Literal

from pydantic import Field, field_validator

from rtstream.model.batch import Batch
from rtstream.model.nexmark import CHUNK, Nexmark
from rtstream.model.record import Record
from rtstream.model.registry import register
from rtstream.sources.base import SourceConfig
from rtstream.sources.clocked import ClockedSource, checked_start


class NexmarkConfig(SourceConfig):
    events: int | None = Field(default=None, ge=0, description="stop after this many events (a finite run); "
                               "none: endless")
    rate: float = Field(default=10_000.0, ge=0.001, le=1e9, description="events per second of event time "
                        "(0.001 to 1e9: slower would carry times past the year 9998)")
    seed: int = Field(default=42, description="the same seed, start and proportions give the same events")
    realtime: bool = Field(default=False, description="release events as the clock reaches their time; false: "
                           "as fast as the pipeline takes them")
    start: str | int | None = Field(default=None, description="the first event's time; default "
                                    "2026-01-01T00:00:00Z, or when first started (kept in the state dir) if realtime")
    only: list[Literal["person", "auction", "bid"]] | None = Field(
        default=None, description='hand over only these kinds, e.g. ["bid"] (the others are not even made)')
    person_proportion: int = Field(default=1, ge=1, description="persons per epoch of events")
    auction_proportion: int = Field(default=3, ge=1, description="auctions per epoch of events")
    bid_proportion: int = Field(default=46, ge=0, description="bids per epoch of events")
    hot_auction_ratio: int = Field(default=2, ge=1, description="a bid is for a hot auction with probability "
                                   "1 - 1/ratio")
    hot_seller_ratio: int = Field(default=4, ge=1, description="an auction is by a hot seller with probability "
                                  "1 - 1/ratio")
    hot_bidder_ratio: int = Field(default=4, ge=1, description="a bid is by a hot bidder with probability "
                                  "1 - 1/ratio")
    in_flight_auctions: int = Field(default=100, ge=1, description="auctions a bid may name besides the hot one")
    active_people: int = Field(default=1000, ge=1, description="persons an auction or bid may name besides the "
                               "hot one")
    batch_size: int = Field(default=1000, ge=1, le=100_000, description="events per batch at most (memory "
                            "holds one batch)")

    @field_validator("start")
    @classmethod
    def _start(cls, value: Any) -> Any:
        return checked_start(value)

    @field_validator("only")
    @classmethod
    def _only(cls, value: Any) -> Any:
        if value is not None and not value:
            raise ValueError('name at least one kind, e.g. ["bid"] (or leave only out for every kind)')
        return value

    def row_fields(self) -> frozenset[str]:
        """The fields of the rows handed over (a join's `left_fields` / `right_fields` are checked
        against them at validate): those of the kinds `only` names, read off the first epoch's events."""
        return frozenset(k for v in Nexmark().generate(0, 50, self.only) for k in v)

    def model_for(self, start_ms: int) -> Nexmark:
        return Nexmark(seed=self.seed, rate=self.rate, start_ms=start_ms, person=self.person_proportion,
                       auction=self.auction_proportion, bid=self.bid_proportion,
                       hot_auction_ratio=self.hot_auction_ratio, hot_seller_ratio=self.hot_seller_ratio,
                       hot_bidder_ratio=self.hot_bidder_ratio, in_flight_auctions=self.in_flight_auctions,
                       active_people=self.active_people)


_offset = attrgetter("offset")


@register("source", "nexmark")
class NexmarkSource(ClockedSource):
    Config = NexmarkConfig

    @property
    def finite(self) -> bool:
        return self.config.events is not None

    async def start(self) -> None:
        self.resume()
        self.model = self.config.model_for(self.start_ms)

    async def batches(self) -> AsyncIterator[Batch]:
        cfg, model = self.config, self.model
        only = frozenset(cfg.only) if cfg.only is not None else None
        i = self.position
        # events are made a whole chunk of draws at a time (`made`: those up to `made_upto` not yet
        # handed over, from `made_at`): a batch that ends inside a chunk would otherwise make that
        # chunk's first events again for the next batch
        made: list[Record] = []
        made_at, made_upto = 0, i
        while cfg.events is None or i < cfg.events:
            upto = i + cfg.batch_size
            if cfg.events is not None:
                upto = min(upto, cfg.events)
            if cfg.realtime:
                now = time.time() * 1000
                due = int((now - model.start_ms) * cfg.rate / 1000) + 1
                if due <= i:
                    await asyncio.sleep(max(0.001, (model.ts_of(i) - now) / 1000))
                    continue
                upto = min(upto, due)
            if made_upto < upto:
                hi = upto - upto % CHUNK + CHUNK if upto % CHUNK else upto
                if cfg.events is not None:
                    hi = min(hi, cfg.events)
                made = made[made_at:] + model.generate(made_upto, hi, only, Record)
                made_at, made_upto = 0, hi
            cut = bisect_left(made, upto, made_at, key=_offset)
            records, made_at = made[made_at:cut], cut
            i = upto
            if records:  # `only` may leave a short range empty: the next batch's end covers it
                yield Batch(self.name, 0, records, i, decoded=True)
            if not cfg.realtime:
                await asyncio.sleep(0)

    def describe(self) -> str:
        c = self.config
        n = f"{c.events} events" if c.events is not None else "endless"
        kinds = f", only {'/'.join(c.only)}" if c.only else ""
        return f"nexmark: {n} at {c.rate:g}/s{' (realtime)' if c.realtime else ''}, seed {c.seed}{kinds}"
