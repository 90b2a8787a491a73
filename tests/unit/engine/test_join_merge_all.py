"""A window join's rows made in bulk (join_state.merge_all) are exactly merge's, field order included."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from rtstream.engine.join_state import Sided, merge, merge_all

NAMES = st.sampled_from(["id", "auction", "price", "dateTime", "extra", "kind", "left_id", "right_price", "x"])
ROW = st.dictionaries(NAMES, st.integers(-3, 3), max_size=6)


@settings(max_examples=400, deadline=None)
@given(left=ROW, rights=st.lists(ROW, max_size=6), key=st.sampled_from([None, "id", "auction", "x"]),
       prefixes=st.sampled_from([("left_", "right_"), ("", "r_"), ("a.", "a.")]))
def test_merge_all_is_merge_row_by_row(left, rights, key, prefixes):
    want = [merge(left, r, key, *prefixes) for r in rights]
    got = merge_all(left, rights, key, *prefixes)
    assert got == want
    assert [list(g) for g in got] == [list(w) for w in want]  # the same field order: the files spell it


def test_rights_of_one_shape_share_a_plan_and_a_new_shape_gets_its_own():
    rng = random.Random(5)
    auction = {"id": 7, "dateTime": 1, "expires": 9, "category": 10, "extra": "a", "kind": "auction"}
    bids = [Sided({"auction": 7, "bidder": rng.randrange(9), "price": rng.randrange(99), "dateTime": t,
                   "extra": "b", "kind": "bid"}, "right") for t in range(50)]
    bids.insert(20, Sided({"price": 5, "auction": 7, "dateTime": 3}, "right"))  # another order, fewer fields
    bids.insert(30, Sided({"auction": 7}, "right"))  # the key alone
    got = merge_all(auction, bids, None, "left_", "right_")
    assert got == [merge(auction, b, None, "left_", "right_") for b in bids]
    assert list(got[0]) == ["id", "left_dateTime", "expires", "category", "left_extra", "left_kind", "auction",
                            "bidder", "price", "right_dateTime", "right_extra", "right_kind"]
    assert list(got[20]) == ["id", "left_dateTime", "expires", "category", "extra", "kind", "price", "auction",
                             "right_dateTime"]
    assert got[30] == {**auction, "auction": 7}
    assert merge_all(auction, [], None, "l_", "r_") == []
    # a shared key is written once, from the left
    assert merge_all({"id": 1, "a": 2}, [{"id": 1, "a": 3}], "id", "l_", "r_") == [{"id": 1, "l_a": 2, "r_a": 3}]
