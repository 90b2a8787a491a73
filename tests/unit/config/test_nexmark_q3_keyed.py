"""q3_keyed's per-seller state (bench/nexmark/nexmark_udf.py): a regular join, whichever side came first."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench" / "nexmark"))
import nexmark_udf as udf  # noqa: E402


def _feed(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    state: Any = None
    out: list[dict[str, Any]] = []
    for r in rows:
        state, got = udf.q3_join(state, r)
        out += got
    return [(o["name"], o["city"], o["state"], o["id"]) for o in out]


PERSON = {"k": 7, "person": ["Ann", "Bend", "OR"], "dateTime": 1}
ELSEWHERE = {"k": 7, "person": ["Bob", "Kent", "WA"], "dateTime": 1}


def test_auctions_after_the_person_are_joined_each_once() -> None:
    rows = [PERSON, {"k": 7, "auction": 100, "dateTime": 2}, {"k": 7, "auction": 101, "dateTime": 3}]
    assert _feed(rows) == [("Ann", "Bend", "OR", 100), ("Ann", "Bend", "OR", 101)]


def test_auctions_before_the_person_wait_for_it() -> None:
    rows = [{"k": 7, "auction": 100, "dateTime": 0}, PERSON, {"k": 7, "auction": 101, "dateTime": 3}]
    assert _feed(rows) == [("Ann", "Bend", "OR", 100), ("Ann", "Bend", "OR", 101)]


def test_a_person_of_another_state_joins_nothing_and_keeps_nothing_waiting() -> None:
    state, out = udf.q3_join(None, {"k": 7, "auction": 100, "dateTime": 0})
    state, out2 = udf.q3_join(state, ELSEWHERE)
    state, out3 = udf.q3_join(state, {"k": 7, "auction": 101, "dateTime": 3})
    assert out == out2 == out3 == []
    assert state == {"person": None}


def test_the_key_map_keeps_persons_and_category_10_auctions_only() -> None:
    assert udf.q3_key({"kind": "auction", "id": 1, "seller": 7, "category": 11, "dateTime": 0}) is None
    assert udf.q3_key({"kind": "bid", "auction": 1}) is None
    assert udf.q3_key({"kind": "auction", "id": 1, "seller": 7, "category": 10, "dateTime": 0})["k"] == 7
