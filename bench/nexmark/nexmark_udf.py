"""The Python parts of the Nexmark query configs (bench/nexmark/qN.toml): maps, window stages and
one aggregator. The configs name them `nexmark_udf:...` (a config's own folder is importable)."""

from __future__ import annotations

import os
from typing import Any

AUCTION_SKIP = 123  # q2 keeps the bids of every 123rd auction


def q1(bid: dict[str, Any]) -> dict[str, Any]:
    """Currency conversion: dollars to euros at 0.908. int / int is correctly rounded, so the price
    is the float nearest the exact decimal price * 0.908 (what SQL's DECIMAL gives, read as a float)."""
    return {"auction": bid["auction"], "bidder": bid["bidder"], "price": bid["price"] * 908 / 1000,
            "dateTime": bid["dateTime"], "extra": bid["extra"]}


def q2(bid: dict[str, Any]) -> dict[str, Any] | None:
    """Selection: the bids of every 123rd auction, as (auction, price)."""
    if bid["auction"] % AUCTION_SKIP:
        return None
    return {"auction": bid["auction"], "price": bid["price"]}


def q2_with_time(bid: dict[str, Any]) -> dict[str, Any] | None:
    """q2 where the window needs the event's time from the row (a file source has no clock of its own)."""
    if bid["auction"] % AUCTION_SKIP:
        return None
    return {"auction": bid["auction"], "price": bid["price"], "dateTime": bid["dateTime"]}


_COUNT_FDS: dict[str, int] = {}  # count file -> its descriptor, opened once: q11's 20,000 windows each opened it


async def discard(records: list[dict[str, Any]], count_file: str | None = None) -> None:
    """The null sink of Nexmark's own figures: rows are made and dropped (only counted, if asked, so the
    bench can check the count: one short line per window, unbuffered, so a run's end leaves it whole)."""
    if count_file is not None:
        fd = _COUNT_FDS.get(count_file)
        if fd is None:
            fd = _COUNT_FDS[count_file] = os.open(count_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(fd, b"%d\n" % len(records))


def q5_hottest(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hot items: of one hopping window's (auction, num) rows, those with the most bids (ties kept)."""
    if not records:
        return []
    top = max(r["num"] for r in records)
    return [r for r in records if r["num"] == top]


class HighestBids:
    """q7's aggregator: the highest price of a window and every bid at that price."""

    def zero(self) -> tuple[int, list[dict[str, Any]]]:
        return (-1, [])

    def add(self, acc: tuple[int, list[dict[str, Any]]], bid: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
        price = bid["price"]
        if price > acc[0]:
            return (price, [bid])
        if price == acc[0]:
            acc[1].append(bid)  # ties are rare: one list per window, changed in place
        return acc

    def merge(self, a: tuple[int, list[dict[str, Any]]], b: tuple[int, list[dict[str, Any]]]) -> tuple[int, list[Any]]:
        if a[0] != b[0]:
            return a if a[0] > b[0] else b
        return (a[0], a[1] + b[1])

    def result(self, acc: tuple[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        return acc[1]


def q7_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The window's highest bids, one row each: auction, bidder, price, dateTime, extra."""
    return [{"auction": b["auction"], "bidder": b["bidder"], "price": b["price"], "dateTime": b["dateTime"],
             "extra": b["extra"]} for r in records for b in r["highest"]]


def q8_key(event: dict[str, Any]) -> dict[str, Any] | None:
    """New users: a person keyed by its id, an auction by its seller, so one window's key holds both."""
    kind = event.get("kind")
    if kind == "person":
        return {"k": event["id"], "name": event["name"], "person": 1, "dateTime": event["dateTime"]}
    if kind == "auction":
        return {"k": event["seller"], "auction": 1, "dateTime": event["dateTime"]}
    return None


def q8_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The persons who opened an auction in the window they joined: id, name, starttime."""
    return [{"id": r["k"], "name": r["name"], "starttime": r["window_start"]}
            for r in records if r["person"] is not None and r["auction"] is not None]


def q3_rows(row: dict[str, Any]) -> dict[str, Any]:
    """q3's columns of an auction joined to its seller: the person's name, city and state, the auction's
    id (`left_id`: both sides have an `id`). dateTime (the auction's) stays for the window."""
    return {"name": row["name"], "city": row["city"], "state": row["state"], "id": row["left_id"],
            "dateTime": row["dateTime"]}


def q8_join_rows(window: Any) -> list[dict[str, Any]]:
    """q8 from the window join's pairs: each person once per window (Nexmark's GROUP BY), with the
    window's start; a person who opened several auctions in it gave several pairs."""
    seen: dict[int, dict[str, Any]] = {}
    for r in window.records:  # both sides have an id: the person's is left_id
        seen.setdefault(r["left_id"], {"id": r["left_id"], "name": r["name"], "starttime": window.start_ms})
    return list(seen.values())


Q3_STATES = ("OR", "ID", "CA")


def q3_key(event: dict[str, Any]) -> dict[str, Any] | None:
    """q3 by hand: a person keyed by its id, an auction of category 10 by its seller."""
    kind = event.get("kind")
    if kind == "person":
        return {"k": event["id"], "person": [event["name"], event["city"], event["state"]],
                "dateTime": event["dateTime"]}
    if kind == "auction" and event["category"] == 10:
        return {"k": event["seller"], "auction": event["id"], "dateTime": event["dateTime"]}
    return None


def q3_join(state: Any, row: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    """A regular join of one seller's person and auctions: the state is the person ([name, city,
    state], or None if not in OR/ID/CA) once seen, else the auctions waiting for it; each pair goes out
    once, whichever came first (Nexmark puts the person first, so nothing waits in practice)."""
    if "person" in row:
        person = row["person"] if row["person"][2] in Q3_STATES else None
        waiting = state["waiting"] if isinstance(state, dict) else []
        out = [] if person is None else [_q3_row(person, a, row["dateTime"]) for a in waiting]
        return {"person": person}, out
    if isinstance(state, dict) and "person" in state:
        person = state["person"]
        return state, ([] if person is None else [_q3_row(person, row["auction"], row["dateTime"])])
    waiting = state["waiting"] if isinstance(state, dict) else []
    return {"waiting": [*waiting, row["auction"]]}, []


def _q3_row(person: list[str], auction: int, ts: int) -> dict[str, Any]:
    return {"name": person[0], "city": person[1], "state": person[2], "id": auction, "dateTime": ts}


def q4_final_prices(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """q4's inner query on one window's (auction, bid) pairs: each auction's highest bid made while it
    was open (auction dateTime <= bid dateTime <= expires), with the auction's category."""
    best: dict[int, dict[str, Any]] = {}
    for r in records:  # both sides have id-like and time fields: the auction's are left_, the bid's right_
        if not r["left_dateTime"] <= r["right_dateTime"] <= r["expires"]:
            continue
        have = best.get(r["id"])
        if have is None or r["price"] > have["final"]:
            best[r["id"]] = {"id": r["id"], "category": r["category"], "final": r["price"]}
    return list(best.values())
