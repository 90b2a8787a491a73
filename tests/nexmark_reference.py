"""The Nexmark queries computed independently: plain Python over the events, no rtstream engine code.

Each query's answer is a sorted list of tuples in its own column order (`COLUMNS`), times as epoch
milliseconds; `canonical` brings any engine's output rows (rtstream's, Flink's) to the same form, so
a comparison and a content hash (`digest`, of the rows as a multiset, in one pass) mean the same
thing for every engine. The bench
(bench/nexmark/run.py) verifies every run against these.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import orjson

COLUMNS: dict[str, tuple[str, ...]] = {
    "q0": ("auction", "bidder", "price", "channel", "url", "dateTime", "extra"),
    "q1": ("auction", "bidder", "price", "dateTime", "extra"),
    "q2": ("auction", "price"),
    "q3": ("name", "city", "state", "id"),
    "q3_keyed": ("name", "city", "state", "id"),
    "q3_as_of": ("name", "city", "state", "id"),
    "q4": ("window_start", "window_end", "category", "avg_final"),
    "q5": ("window_start", "window_end", "auction", "num"),
    "q7": ("auction", "bidder", "price", "dateTime", "extra"),
    "q8": ("id", "name", "starttime"),
    "q8_join": ("id", "name", "starttime"),
    "q11": ("bidder", "bid_count", "window_start", "window_end"),
    "q12": ("bidder", "bid_count", "window_start", "window_end"),
}
TIMES = {"window_start", "window_end", "starttime", "dateTime"}
Row = tuple[Any, ...]


def _ms(v: Any) -> int:
    """Epoch ms from an int or an ISO-8601 string ('2026-01-01T00:00:02Z', with or without fraction)."""
    if isinstance(v, int):
        return v
    text = str(v).replace("Z", "+00:00").replace(" ", "T")
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError(f"a time without a zone: {v!r}")
    return round(dt.timestamp() * 1000)


def canonical_row(query: str, r: dict[str, Any]) -> Row:
    t = []
    for c in COLUMNS[query]:
        v = r[c]
        if c in TIMES:
            v = _ms(v)
        elif c == "price" and query == "q1":
            v = float(v)  # a decimal printed by SQL, or rtstream's float: the same nearest float
        t.append(v)
    return tuple(t)


def canonical(query: str, rows: Iterable[dict[str, Any]]) -> list[Row]:
    return sorted((canonical_row(query, r) for r in rows), key=orjson.dumps)


def digest(rows: Iterable[Row]) -> tuple[int, str]:
    """(count, hash) of a multiset of rows, in one pass and in any order: the sum of each row's hash."""
    n, total = 0, 0
    for row in rows:
        n += 1
        total += int.from_bytes(hashlib.blake2b(orjson.dumps(row), digest_size=16).digest(), "big")
    return n, f"{total % (1 << 128):032x}"[:16]


def _bids(events: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (e for e in events if e["kind"] == "bid")


def q0_rows(events: Iterable[dict[str, Any]]) -> Iterator[Row]:
    return (canonical_row("q0", b) for b in _bids(events))


def q1_rows(events: Iterable[dict[str, Any]]) -> Iterator[Row]:
    return ((b["auction"], b["bidder"], b["price"] * 908 / 1000, b["dateTime"], b["extra"]) for b in _bids(events))


def q2_rows(events: Iterable[dict[str, Any]]) -> Iterator[Row]:
    return ((b["auction"], b["price"]) for b in _bids(events) if b["auction"] % 123 == 0)


def q0(events: Iterable[dict[str, Any]]) -> list[Row]:
    return sorted(q0_rows(events), key=orjson.dumps)


def q1(events: Iterable[dict[str, Any]]) -> list[Row]:
    return sorted(q1_rows(events), key=orjson.dumps)


def q2(events: Iterable[dict[str, Any]]) -> list[Row]:
    return sorted(q2_rows(events), key=orjson.dumps)


def q3(events: Iterable[dict[str, Any]]) -> list[Row]:
    """Nexmark's q3 as the regular (unwindowed) join it is: every auction of category 10 whose seller
    lives in OR, ID or CA, whichever of the two came first."""
    persons: dict[int, dict[str, Any]] = {}
    auctions: list[dict[str, Any]] = []
    for e in events:
        if e["kind"] == "person" and e["state"] in ("OR", "ID", "CA"):
            persons[e["id"]] = e
        elif e["kind"] == "auction" and e["category"] == 10:
            auctions.append(e)
    rows = [(p["name"], p["city"], p["state"], a["id"]) for a in auctions if (p := persons.get(a["seller"]))]
    return sorted(rows, key=orjson.dumps)


def q3_as_of(events: Iterable[dict[str, Any]]) -> list[Row]:
    """q3 as bench/nexmark/q3.toml computes it, an event-time temporal join (Flink's `FOR SYSTEM_TIME AS
    OF`): an auction meets its seller's person only if the person's dateTime is at or before its own.
    Nexmark picks a seller up to PERSON_ID_LEAD persons ahead, so a few auctions come before their
    seller: the regular join (`q3`) has them, this does not."""
    persons: dict[int, dict[str, Any]] = {}
    auctions: list[dict[str, Any]] = []
    for e in events:
        if e["kind"] == "person" and e["state"] in ("OR", "ID", "CA"):
            persons[e["id"]] = e
        elif e["kind"] == "auction" and e["category"] == 10:
            auctions.append(e)
    rows = [(p["name"], p["city"], p["state"], a["id"]) for a in auctions
            if (p := persons.get(a["seller"])) and p["dateTime"] <= a["dateTime"]]
    return sorted(rows, key=orjson.dumps)


def q4(events: Iterable[dict[str, Any]], size: int = 10_000) -> list[Row]:
    """q4 as bench/nexmark/q4.toml defines it (not Nexmark's unwindowed q4): per 10 s window, each
    auction's highest bid among the window's bids made while it was open (dateTime to expires, both
    ends in), then the mean of those per category."""
    auctions: dict[tuple[int, int], dict[str, Any]] = {}
    bids: list[dict[str, Any]] = []
    for e in events:
        if e["kind"] == "auction":
            auctions[(e["dateTime"] // size, e["id"])] = e
        elif e["kind"] == "bid":
            bids.append(e)
    final: dict[tuple[int, int], int] = {}
    for b in bids:
        a = auctions.get((b["dateTime"] // size, b["auction"]))
        if a is not None and a["dateTime"] <= b["dateTime"] <= a["expires"]:
            key = (b["dateTime"] // size, a["id"])
            final[key] = max(final.get(key, b["price"]), b["price"])
    per: dict[tuple[int, int], list[int]] = defaultdict(list)
    for (w, aid), price in final.items():
        per[(w, auctions[(w, aid)]["category"])].append(price)
    rows = [(w * size, w * size + size, cat, sum(ps) / len(ps)) for (w, cat), ps in per.items()]
    return sorted(rows, key=orjson.dumps)


def q5(events: Iterable[dict[str, Any]], size: int = 10_000, hop: int = 2_000) -> list[Row]:
    counts: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for b in _bids(events):
        last = b["dateTime"] // hop * hop
        for start in range(last - size + hop, last + hop, hop):
            counts[start][b["auction"]] += 1
    rows = []
    for start, per_auction in counts.items():
        top = max(per_auction.values())
        rows += [(start, start + size, a, n) for a, n in per_auction.items() if n == top]
    return sorted(rows, key=orjson.dumps)


def q7(events: Iterable[dict[str, Any]], size: int = 10_000) -> list[Row]:
    windows: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for b in _bids(events):
        windows[b["dateTime"] // size].append(b)
    rows = []
    for bids in windows.values():
        top = max(b["price"] for b in bids)
        rows += [(b["auction"], b["bidder"], b["price"], b["dateTime"], b["extra"]) for b in bids if b["price"] == top]
    return sorted(rows, key=orjson.dumps)


def q8(events: Iterable[dict[str, Any]], size: int = 10_000) -> list[Row]:
    persons: dict[tuple[int, int], str] = {}
    sellers: set[tuple[int, int]] = set()
    for e in events:
        start = e["dateTime"] // size * size
        if e["kind"] == "person":
            persons[(start, e["id"])] = e["name"]
        elif e["kind"] == "auction":
            sellers.add((start, e["seller"]))
    return sorted(((pid, name, start) for (start, pid), name in persons.items() if (start, pid) in sellers),
                  key=orjson.dumps)


def q11(events: Iterable[dict[str, Any]], gap: int = 10_000) -> list[Row]:
    """Sessions per bidder: bids less than gap apart share one; it ends gap after its last bid."""
    times: dict[int, list[int]] = defaultdict(list)
    for b in _bids(events):
        times[b["bidder"]].append(b["dateTime"])
    rows = []
    for bidder, ts in times.items():
        ts.sort()
        first = last = ts[0]
        n = 0
        for t in ts:
            if t - last >= gap:
                rows.append((bidder, n, first, last + gap))
                first, n = t, 0
            last = t
            n += 1
        rows.append((bidder, n, first, last + gap))
    return sorted(rows, key=orjson.dumps)


def q12(events: Iterable[dict[str, Any]], size: int = 10_000) -> list[Row]:
    """Bids per bidder per 10 s of the source's clock, which for the generator (and a topic gen.py
    wrote, and a file of its events) is each bid's dateTime."""
    counts: dict[tuple[int, int], int] = defaultdict(int)
    for b in _bids(events):
        counts[(b["bidder"], b["dateTime"] // size * size)] += 1
    return sorted(((bidder, n, start, start + size) for (bidder, start), n in counts.items()), key=orjson.dumps)


STREAMING = {"q0": q0_rows, "q1": q1_rows, "q2": q2_rows}  # no state: rows as the events pass


def reference_digest(query: str, events: Iterable[dict[str, Any]]) -> tuple[int, str]:
    """The reference's (row count, digest), without holding the rows of the stateless queries."""
    if query in STREAMING:
        return digest(STREAMING[query](events))
    return digest(QUERIES[query](events))  # each query reads the events once


QUERIES = {"q0": q0, "q1": q1, "q2": q2, "q3": q3, "q3_keyed": q3, "q3_as_of": q3_as_of, "q4": q4, "q5": q5, "q7": q7, "q8": q8, "q8_join": q8, "q11": q11, "q12": q12}
