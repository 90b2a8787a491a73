"""The nexmark source and its event model: proportions, ids, clock, determinism, resuming, refusals."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from rtstream.model.nexmark import FIRST_AUCTION_ID, FIRST_PERSON_ID, ID_LEAD, Nexmark
from rtstream.runtime.context import Context
from rtstream.sources.nexmark import NexmarkConfig, NexmarkSource
from tests.support import run_cli, write_config

FIELDS = {
    "person": {"kind", "id", "name", "emailAddress", "creditCard", "city", "state", "dateTime", "extra"},
    "auction": {"kind", "id", "itemName", "description", "initialBid", "reserve", "dateTime", "expires", "seller",
                "category", "extra"},
    "bid": {"kind", "auction", "bidder", "price", "channel", "url", "dateTime", "extra"},
}


def test_each_epoch_holds_one_person_three_auctions_and_46_bids_in_that_order() -> None:
    events = Nexmark().generate(0, 5000)
    assert Counter(e["kind"] for e in events) == {"person": 100, "auction": 300, "bid": 4600}
    assert [e["kind"] for e in events[:5]] == ["person", "auction", "auction", "auction", "bid"]
    assert all(events[i]["kind"] == "bid" for i in range(4, 50))
    other = Nexmark(person=2, auction=5, bid=3).generate(0, 1000)
    assert Counter(e["kind"] for e in other) == {"person": 200, "auction": 500, "bid": 300}


def test_every_event_has_exactly_its_kinds_fields_and_its_clock() -> None:
    model = Nexmark(rate=250.0, start_ms=1_000_000)
    for i, e in enumerate(model.generate(0, 3000)):
        assert set(e) == FIELDS[e["kind"]], e
        assert e["dateTime"] == 1_000_000 + int(i * 4)  # 1000 / 250 ms apart
        if e["kind"] == "auction":
            assert e["expires"] > e["dateTime"] and e["reserve"] >= e["initialBid"] > 0
            assert 10 <= e["category"] < 15
        if e["kind"] == "bid":
            assert e["price"] > 0 and e["url"].startswith("https://www.nexmark.com/")


def test_ids_follow_nexmarks_rules() -> None:
    model = Nexmark()
    events = model.generate(0, 50_000)
    persons = [e["id"] for e in events if e["kind"] == "person"]
    auctions = [e["id"] for e in events if e["kind"] == "auction"]
    assert persons == list(range(FIRST_PERSON_ID, FIRST_PERSON_ID + 1000))  # consecutive, in order
    assert auctions == list(range(FIRST_AUCTION_ID, FIRST_AUCTION_ID + 3000))
    hot = 0
    bids = 0
    for i, e in enumerate(events):
        if e["kind"] == "bid":
            bids += 1
            last_auction = model.last_auction(i) + FIRST_AUCTION_ID
            last_person = model.last_person(i) + FIRST_PERSON_ID
            assert FIRST_AUCTION_ID <= e["auction"] <= last_auction + ID_LEAD
            assert FIRST_PERSON_ID <= e["bidder"] <= last_person + ID_LEAD
            hot += e["auction"] == (last_auction - FIRST_AUCTION_ID) // 100 * 100 + FIRST_AUCTION_ID
        if e["kind"] == "auction":
            assert FIRST_PERSON_ID <= e["seller"] <= model.last_person(i) + FIRST_PERSON_ID + ID_LEAD
    assert 0.45 < hot / bids < 0.6  # hot_auction_ratio = 2: half the bids, plus the random draws that land on it


def test_the_same_seed_gives_the_same_events_and_another_seed_others() -> None:
    assert Nexmark(seed=7).generate(0, 3000) == Nexmark(seed=7).generate(0, 3000)
    assert Nexmark(seed=7).generate(0, 3000) != Nexmark(seed=8).generate(0, 3000)


def test_a_range_starting_mid_chunk_is_the_same_as_the_whole_stream_there() -> None:
    model = Nexmark()
    whole = model.generate(0, 5000)
    for lo, hi in [(1, 2), (1023, 1025), (1500, 4999), (2048, 2049)]:
        assert model.generate(lo, hi) == whole[lo:hi]


def test_only_bids_are_the_same_bids_as_the_whole_stream() -> None:
    model = Nexmark()
    whole = model.generate(0, 10_000)
    assert model.generate(0, 10_000, only={"bid"}) == [e for e in whole if e["kind"] == "bid"]
    assert model.generate(300, 7000, only={"person", "auction"}) == [
        e for e in whole[300:7000] if e["kind"] != "bid"]


def _source(tmp_path: Path, **cfg: object) -> NexmarkSource:
    return NexmarkSource("events", NexmarkConfig(type="nexmark", **cfg), Context("t", tmp_path))


async def _take(src: NexmarkSource, n: int) -> list[tuple[int, int, dict]]:
    out: list[tuple[int, int, dict]] = []
    async for batch in src.batches():
        out += [(r.offset, r.timestamp, r.value) for r in batch.records]
        if len(out) >= n:
            break
    return out[:n]


def test_an_endless_source_resumes_at_its_commit_with_the_same_events(tmp_path: Path) -> None:
    async def scenario() -> None:
        first = _source(tmp_path, batch_size=700)
        await first.start()
        seen = await _take(first, 2100)
        await first.commit({0: 1400})
        again = _source(tmp_path, batch_size=700)
        await again.start()
        resumed = await _take(again, 700)
        assert resumed == seen[1400:2100]
        model = Nexmark()
        assert [v for _, _, v in seen] == model.generate(0, 2100)
        assert [ts for _, ts, _ in seen] == [model.ts_of(i) for i in range(2100)]
    asyncio.run(scenario())


def test_a_finite_source_hands_over_events_with_only_and_then_ends(tmp_path: Path) -> None:
    async def scenario() -> list[tuple[int, int, dict]]:
        src = _source(tmp_path, events=1234, only=["auction"], batch_size=100)
        await src.start()
        return await _take(src, 10**9)
    got = asyncio.run(scenario())
    whole = Nexmark().generate(0, 1234)
    assert [(o, v) for o, _, v in got] == [(i, e) for i, e in enumerate(whole) if e["kind"] == "auction"]


@pytest.mark.parametrize(("key", "value", "said"), [
    ("only", [], "sources.events.only"),
    ("only", ["bids"], "sources.events.only"),
    ("person_proportion", 0, "sources.events.person_proportion"),
    ("rate", 0, "sources.events.rate"),
    ("rate", 1e-300, "sources.events.rate"),
    ("batch_size", 10**12, "sources.events.batch_size"),
    ("start", "next tuesday", "sources.events.start"),
    ("events", -1, "sources.events.events"),
])
def test_a_wrong_nexmark_config_is_one_line_naming_its_key(tmp_path: Path, key: str, value: object, said: str) -> None:
    cfg = write_config(tmp_path / "rt.toml", {
        "pipeline": {"flow": "events >> out"},
        "window": {"size": "1s", "time_field": "dateTime"},
        "sources": {"events": {"type": "nexmark", "events": 10, key: value}},
        "sinks": {"out": {"type": "stdout"}},
        "daemon": {"state_dir": str(tmp_path / "state")},
    })
    done = run_cli("validate", "-c", str(cfg))
    assert done.returncode == 2, done.stdout + done.stderr
    assert said in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("source", [{"type": "nexmark", "events": 10}, {"type": "generator", "count": 10}])
def test_a_start_that_is_no_time_is_one_line_not_a_traceback(tmp_path: Path, source: dict) -> None:
    cfg = write_config(tmp_path / "rt.toml", {
        "pipeline": {"flow": "events >> out"},
        "window": {"size": "1s"},
        "sources": {"events": {**source, "start": "next tuesday"}},
        "sinks": {"out": {"type": "stdout"}},
        "daemon": {"state_dir": str(tmp_path / "state")},
    })
    done = run_cli("validate", "-c", str(cfg))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "sources.events.start" in done.stderr and "'next tuesday' is neither a number nor ISO-8601" in done.stderr
