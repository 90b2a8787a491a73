"""The nexmark source makes events a chunk of draws at a time and the bids through `bid_maker`: the
events, their batches' sizes and ends, and a resumed run are what the event model alone gives."""

from __future__ import annotations

import asyncio
import hashlib
import random
from pathlib import Path

import orjson
import pytest

from rtstream.model.nexmark import BID, CHUNK, KINDS, Nexmark, bid_maker
from rtstream.runtime.context import Context
from rtstream.sources.nexmark import NexmarkConfig, NexmarkSource


def _batches(tmp_path: Path, **cfg: object) -> list[tuple[list[tuple[int, int | None, dict]], int]]:
    async def go() -> list[tuple[list[tuple[int, int | None, dict]], int]]:
        src = NexmarkSource("events", NexmarkConfig(type="nexmark", **cfg), Context("t", tmp_path))
        await src.start()
        return [([(r.offset, r.timestamp, r.value) for r in b.records], b.end) async for b in src.batches()]
    return asyncio.run(go())


@pytest.mark.parametrize("batch_size", [1, 7, 1000, CHUNK, 3000])
@pytest.mark.parametrize("only", [None, ["bid"], ["person", "auction"]])
def test_batches_hand_over_the_models_events_at_every_batch_size(tmp_path: Path, batch_size: int,
                                                                  only: list[str] | None) -> None:
    events = 5000
    got = _batches(tmp_path, events=events, batch_size=batch_size, only=only)
    model = Nexmark()
    want = [(i, model.ts_of(i), e) for i, e in enumerate(model.generate(0, events)) if only is None or e["kind"] in only]
    assert [r for recs, _ in got for r in recs] == want
    ends = [end for _, end in got]
    assert ends == sorted(set(ends)) and ends[-1] <= events
    if only is None or "bid" in only:
        assert ends[-1] == events  # the last events are bids: a range of none of `only` is not handed over
    for recs, end in got:
        assert 0 < len(recs) <= batch_size and recs[-1][0] < end and end - recs[0][0] <= batch_size


def test_the_bid_maker_makes_make_bids_bids_from_the_same_draws() -> None:
    for seed in range(30):
        rnd = random.Random(seed)
        model = Nexmark(seed=seed, person=rnd.randint(1, 4), auction=rnd.randint(1, 6), bid=rnd.randint(1, 60),
                        hot_auction_ratio=rnd.randint(1, 5), hot_bidder_ratio=rnd.randint(1, 5),
                        in_flight_auctions=rnd.randint(1, 200), active_people=rnd.randint(1, 2000))
        fast = bid_maker(model)
        bids = [i for i in [rnd.randrange(10**9) for _ in range(3000)] + list(range(0, 300)) if model.kind_of(i) == BID]
        assert len(bids) > 100
        for i in bids:  # a bid's index (the maker is only asked for bids)
            a, b = random.Random(f"{seed}:{i}").random, random.Random(f"{seed}:{i}").random
            ts = model.ts_of(i)
            assert fast(i, ts, a) == model.make_bid(i, ts, b), (seed, i)
            assert a() == b()  # and the same draws used up


def test_the_events_are_those_of_before_the_bid_maker() -> None:
    """Digests of the events the model made before bid_maker (seed 42, default and odd proportions)."""
    cases = [(Nexmark(), 0, 120_000, None, "ebf0825a99c30b003063478b"),
             (Nexmark(), 0, 120_000, {BID}, "e6beddb0bba9a7a766788181"),
             (Nexmark(seed=9, rate=333.0, start_ms=5_000), 1000, 40_000, None, "5c0dc90a4410cb6f4e284c4d"),
             (Nexmark(person=2, auction=5, bid=3, hot_auction_ratio=1, hot_bidder_ratio=1, in_flight_auctions=7,
                      active_people=3), 77, 30_000, None, "4a5c9ad6d819bca1688f89e5"),
             (Nexmark(bid=200, hot_auction_ratio=5, hot_bidder_ratio=9), 5000, 60_000, {BID, KINDS[1]},
              "928ad8b4881791b230aea403")]
    for model, lo, hi, only, digest in cases:
        assert hashlib.sha256(orjson.dumps(model.generate(lo, hi, only))).hexdigest()[:24] == digest, (lo, hi, only)
