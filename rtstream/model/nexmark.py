"""The Nexmark events (persons, auctions, bids), each decided by (seed, index) alone.

Nexmark (Tucker et al.; the generators of the Apache Beam and Flink suites) is an online auction:
in every epoch of `person + auction + bid` events (1 + 3 + 46 by default) come the persons, then
the auctions, then the bids. Ids follow its rules: event i knows the last person and auction made
before it, an auction's seller and a bid's bidder and auction are mostly "hot" ones (the first of the
last hundred), else one of the recently active people or in-flight auctions, a few ids ahead
included (so a bid can name an auction not made yet, as in Nexmark). Event i's time is
`start_ms + i * 1000 / rate` on the generator's own clock, so a replay gives the same events and the
same windows.

Every value is a flat dict with `kind` ("person", "auction" or "bid") and the fields of its kind,
times in epoch milliseconds. Random draws come from one generator per (seed, chunk of 1024 events,
kind): events of one kind never consume another kind's draws, so a reader that wants only bids
(`only`) skips making persons and auctions and still gets the same bids.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

PERSON, AUCTION, BID = "person", "auction", "bid"
KINDS = (PERSON, AUCTION, BID)
FIRST_PERSON_ID = 1000
FIRST_AUCTION_ID = 1000
FIRST_CATEGORY_ID = 10
CATEGORIES = 5
ID_LEAD = 10  # ids this far past the last one made may be named (Nexmark's "leads")
HOT_GROUP = 100  # a hot id is the first (the second, for bidders) of its group of a hundred
CHUNK = 1024
STATES = ("AZ", "CA", "ID", "OR", "WA", "WY")
CITIES = ("Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent",
          "Cheyenne")
FIRST_NAMES = ("Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter")
LAST_NAMES = ("Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris")
HOT_CHANNELS = ("Google", "Facebook", "Baidu", "Apple")
CHANNELS = 10_000
# Text fields are slices of one fixed pool of letters and spaces: as random as Nexmark's strings for
# every query, at the cost of a slice rather than a draw per character.
_POOL_RNG = random.Random(20260101)
POOL = "".join(_POOL_RNG.choice("abcdefghijklmnopqrstuvwxyz      ") for _ in range(8192))
AVG_SIZE = {PERSON: 200, AUCTION: 500, BID: 100}  # bytes an event averages, its `extra` making up the rest


def _url(channel: int, r: Callable[[], float]) -> str:
    parts = "/".join(POOL[o:o + 5].replace(" ", "x") for o in (int(r() * 8000) for _ in range(3)))
    return f"https://www.nexmark.com/{parts}/item.htm?query=1&channel_id={channel}"


HOT_URLS = tuple(_url(i, random.Random(i).random) for i in range(len(HOT_CHANNELS)))


@dataclass(frozen=True, slots=True)
class Nexmark:
    """The rules of one stream: its seed, clock and proportions."""

    seed: int = 42
    rate: float = 10_000.0  # events per second of event time
    start_ms: int = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    person: int = 1
    auction: int = 3
    bid: int = 46
    hot_auction_ratio: int = 2  # a bid is for a hot auction with probability 1 - 1/ratio
    hot_seller_ratio: int = 4
    hot_bidder_ratio: int = 4
    in_flight_auctions: int = 100
    active_people: int = 1000

    def __post_init__(self) -> None:
        if self.person < 1 or self.auction < 1 or self.bid < 0:
            raise ValueError("proportions need person >= 1, auction >= 1 and bid >= 0")
        if min(self.hot_auction_ratio, self.hot_seller_ratio, self.hot_bidder_ratio) < 1:
            raise ValueError("hot ratios are at least 1")
        if self.rate <= 0:
            raise ValueError("rate must be above 0")

    @property
    def epoch(self) -> int:
        return self.person + self.auction + self.bid

    def ts_of(self, i: int) -> int:
        return self.start_ms + int(i * 1000 / self.rate)

    def kind_of(self, i: int) -> str:
        offset = i % self.epoch
        return PERSON if offset < self.person else AUCTION if offset < self.person + self.auction else BID

    def last_person(self, i: int) -> int:
        """The base-0 id of the last person made at or before event i."""
        epoch, offset = divmod(i, self.epoch)
        return epoch * self.person + min(offset, self.person - 1)

    def last_auction(self, i: int) -> int:
        """The base-0 id of the last auction made at or before event i (-1 before the first)."""
        epoch, offset = divmod(i, self.epoch)
        if offset < self.person:
            epoch, offset = epoch - 1, self.auction - 1
        else:
            offset = min(offset - self.person, self.auction - 1)
        return epoch * self.auction + offset

    def _some_person(self, i: int, r: Callable[[], float]) -> int:
        people = self.last_person(i) + 1
        active = min(people, self.active_people)
        return people - active + int(r() * (active + ID_LEAD))

    def _some_auction(self, i: int, r: Callable[[], float]) -> int:
        last = self.last_auction(i)
        low = max(last - self.in_flight_auctions, 0)
        return low + int(r() * (last - low + 1 + ID_LEAD))

    def make_person(self, i: int, ts: int, r: Callable[[], float]) -> dict[str, Any]:
        name = f"{FIRST_NAMES[int(r() * len(FIRST_NAMES))]} {LAST_NAMES[int(r() * len(LAST_NAMES))]}"
        o = int(r() * 8000)
        email = f"{POOL[o:o + 7].replace(' ', 'x')}@{POOL[o + 7:o + 12].replace(' ', 'x')}.com"
        card = " ".join(f"{int(r() * 10000):04d}" for _ in range(4))
        city, state = CITIES[int(r() * len(CITIES))], STATES[int(r() * len(STATES))]
        return {"kind": PERSON, "id": self.last_person(i) + FIRST_PERSON_ID, "name": name, "emailAddress": email,
                "creditCard": card, "city": city, "state": state, "dateTime": ts,
                "extra": _extra(r, 8 + len(name) + len(email) + len(card) + len(city) + len(state), PERSON)}

    def make_auction(self, i: int, ts: int, r: Callable[[], float]) -> dict[str, Any]:
        if int(r() * self.hot_seller_ratio) > 0:
            seller = self.last_person(i) // HOT_GROUP * HOT_GROUP
        else:
            seller = self._some_person(i, r)
        category = FIRST_CATEGORY_ID + int(r() * CATEGORIES)
        initial = _price(r)
        # an auction lasts on average until in_flight_auctions more auctions have been made
        ahead = self.in_flight_auctions * self.epoch // self.auction
        horizon = self.ts_of(i + ahead) - ts
        expires = ts + 1 + int(r() * max(horizon * 2, 1))
        o, n = int(r() * 8000), 1 + int(r() * 19)
        item = POOL[o:o + n]
        o, n = int(r() * 8000), 1 + int(r() * 99)
        desc = POOL[o:o + n]
        return {"kind": AUCTION, "id": self.last_auction(i) + FIRST_AUCTION_ID, "itemName": item,
                "description": desc, "initialBid": initial, "reserve": initial + _price(r), "dateTime": ts,
                "expires": expires, "seller": seller + FIRST_PERSON_ID, "category": category,
                "extra": _extra(r, 48 + len(item) + len(desc), AUCTION)}

    def make_bid(self, i: int, ts: int, r: Callable[[], float]) -> dict[str, Any]:
        if int(r() * self.hot_auction_ratio) > 0:
            auction = self.last_auction(i) // HOT_GROUP * HOT_GROUP
        else:
            auction = self._some_auction(i, r)
        if int(r() * self.hot_bidder_ratio) > 0:
            bidder = self.last_person(i) // HOT_GROUP * HOT_GROUP + 1  # not the hot seller
        else:
            bidder = self._some_person(i, r)
        price = _price(r)
        if int(r() * 100) > 0:
            c = int(r() * len(HOT_CHANNELS))
            channel, url = HOT_CHANNELS[c], HOT_URLS[c]
        else:
            c = int(r() * CHANNELS)
            channel, url = f"channel-{c}", _url(c, r)
        return {"kind": BID, "auction": auction + FIRST_AUCTION_ID, "bidder": bidder + FIRST_PERSON_ID,
                "price": price, "channel": channel, "url": url, "dateTime": ts, "extra": _extra(r, 32, BID)}

    def generate(self, lo: int, hi: int, only: Collection[str] | None = None,
                 out: Callable[[dict[str, Any], int, int], Any] | None = None) -> list[Any]:
        """Events lo..hi-1 (of the kinds in `only`, if given) as out(value, index, time) (default: the value).

        Cheapest with `lo` at a multiple of CHUNK: a chunk's draws start at its first event, so the
        events of a chunk before `lo` are made again and thrown away."""
        makers = {PERSON: self.make_person, AUCTION: self.make_auction, BID: bid_maker(self)}
        epoch, person, first_bid, rate, start_ms = self.epoch, self.person, self.person + self.auction, self.rate, \
            self.start_ms
        result: list[Any] = []
        i = lo - lo % CHUNK  # the draws of a chunk start at its first event: replay from there
        while i < hi:
            chunk = i // CHUNK
            draws = {k: random.Random(f"{self.seed}:{chunk}:{k}").random for k in KINDS}
            end = min(i + CHUNK, hi)
            while i < end:
                offset = i % epoch  # kind_of and ts_of, inline: this loop runs once an event
                kind = PERSON if offset < person else AUCTION if offset < first_bid else BID
                if only is None or kind in only:
                    ts = start_ms + int(i * 1000 / rate)
                    value = makers[kind](i, ts, draws[kind])
                    if i >= lo:
                        result.append(value if out is None else out(value, i, ts))
                # a kind left out is skipped: its draws are its own, so nothing needs advancing
                i += 1
        return result


def bid_maker(m: Nexmark) -> Callable[[int, int, Callable[[], float]], dict[str, Any]]:
    """`m.make_bid` with the stream's numbers bound once: the same draws in the same order, the same
    bid (tests/unit/sources/test_nexmark_source.py), at about half the cost. A bid's event is past
    its epoch's persons and auctions, so the last of each made before it are the epoch's last."""
    epoch, person, auction = m.epoch, m.person, m.auction
    hot_auction, hot_bidder, in_flight, active_people = (m.hot_auction_ratio, m.hot_bidder_ratio,
                                                         m.in_flight_auctions, m.active_people)
    n_hot = len(HOT_CHANNELS)
    want = AVG_SIZE[BID] - 32
    delta = round(want * 0.2)
    pool_room = len(POOL)

    def make(i: int, ts: int, r: Callable[[], float]) -> dict[str, Any]:
        e1 = i // epoch + 1
        if int(r() * hot_auction) > 0:
            auction_id = (e1 * auction - 1) // HOT_GROUP * HOT_GROUP
        else:
            last = e1 * auction - 1
            low = last - in_flight if last > in_flight else 0
            auction_id = low + int(r() * (last - low + 1 + ID_LEAD))
        if int(r() * hot_bidder) > 0:
            bidder = (e1 * person - 1) // HOT_GROUP * HOT_GROUP + 1  # not the hot seller
        else:
            people = e1 * person
            active = people if people < active_people else active_people
            bidder = people - active + int(r() * (active + ID_LEAD))
        price = round(10.0 ** (r() * 6.0) * 100.0)
        if int(r() * 100) > 0:
            c = int(r() * n_hot)
            channel, url = HOT_CHANNELS[c], HOT_URLS[c]
        else:
            c = int(r() * CHANNELS)
            channel, url = f"channel-{c}", _url(c, r)
        if want > 0:  # _extra(r, 32, BID)
            n = want - delta + int(r() * (2 * delta + 1))
            o = int(r() * (pool_room - n))
            extra = POOL[o:o + n]
        else:
            extra = ""
        return {"kind": BID, "auction": auction_id + FIRST_AUCTION_ID, "bidder": bidder + FIRST_PERSON_ID,
                "price": price, "channel": channel, "url": url, "dateTime": ts, "extra": extra}

    return make


def _price(r: Callable[[], float]) -> int:
    return round(10.0 ** (r() * 6.0) * 100.0)


def _extra(r: Callable[[], float], size: int, kind: str) -> str:
    """Padding that brings the event to its kind's average size, +-20% (Nexmark's `extra`)."""
    want = AVG_SIZE[kind] - size
    if want <= 0:
        return ""
    delta = round(want * 0.2)
    n = want - delta + int(r() * (2 * delta + 1))
    o = int(r() * (len(POOL) - n))
    return POOL[o:o + n]
