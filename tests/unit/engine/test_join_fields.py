"""A window join's `left_fields` / `right_fields`: its rows carry the named fields alone (and the time
fields), the windows keep no more than the join reads, and the rows are otherwise the join's own."""

import asyncio
import random

import pytest

from rtstream.engine.commit_rule import CommitTracker
from rtstream.stages.join import JoinConfig, WindowJoinStage
from tests.unit.engine.test_joins import BASE, CTX, MIN, Feed, engine


def joined(how, **fields):
    """The rows of a join of the same orders and payments, and the rows its windows held."""
    rnd = random.Random(7)
    orders = [{"id": f"k{rnd.randrange(13)}", "ts": BASE + rnd.randrange(3 * MIN), "amount": i, "note": "o"}
              for i in range(120)]
    payments = [{"id": f"k{rnd.randrange(10)}", "ts": BASE + rnd.randrange(3 * MIN), "paid": i, "amount": -i,
                 "note": "p"} for i in range(100)]
    orders.append({"ts": BASE + 5, "id": "k1"})  # a row without a named field: null in its rows
    stage = WindowJoinStage("match", JoinConfig(type="join", left="orders", right="payments", on="id", how=how,
                                                **fields), CTX)
    t = CommitTracker()
    feed = Feed(engine(stage, t), t)
    assert feed.send("orders", sorted(orders, key=lambda v: v["ts"])) == []
    assert feed.send("payments", sorted(payments, key=lambda v: v["ts"])) == []
    out, held = [], []
    for em in feed.close(final=True):
        held += em.rows
        out += asyncio.run(stage.run(em.window, em.rows))
    return out, held


@pytest.mark.parametrize("how", ["inner", "left"])
def test_the_rows_are_the_whole_rows_with_the_named_fields_alone(how):
    whole, _ = joined(how)
    only, held = joined(how, left_fields=["amount", "id"], right_fields=["paid"])
    # amount is the left's alone now: no right field clashes with it, so it keeps its name
    want = [{"amount": r.get("left_amount"), "id": r["id"], "left_ts": r["left_ts"], "paid": r["paid"],
             "right_ts": r["right_ts"], "ts": r["ts"]} for r in whole]
    assert only == want  # the same rows, in the same order, each with its fields in that order
    assert [list(r) for r in only[:1]] == [["amount", "id", "left_ts", "paid", "right_ts", "ts"]]
    assert len(only) > 100 and any(r["amount"] is None for r in only)  # the row without amount
    if how == "left":
        assert any(r["paid"] is None and r["right_ts"] is None for r in only)
    # the windows kept each side's named fields, its key and its time, nothing else
    assert {tuple(sorted(r)) for r in held} == {("amount", "id", "ts"), ("id", "ts"), ("id", "paid", "ts")}


def test_one_side_named_leaves_the_other_whole_and_a_clash_still_prefixed():
    whole, _ = joined("inner")
    only, _ = joined("inner", right_fields=["amount", "paid"])
    # the right's note is not kept, so the left's is no clash any more: `note`, not `left_note`
    want = [{("note" if k == "left_note" else k): v for k, v in r.items() if k != "right_note"} for r in whole]
    assert only == want
    assert all("left_amount" in r and "right_amount" in r and "note" in r for r in only)


def test_a_window_restored_from_its_checkpoint_pairs_the_same_rows():
    """The kept-fields rows a window holds go into its checkpoint and come back marked with their side."""
    fields = {"left_fields": ["amount"], "right_fields": ["paid"]}
    stage, t = WindowJoinStage("match", JoinConfig(type="join", left="orders", right="payments", on="id",
                                                   **fields), CTX), CommitTracker()
    e = engine(stage, t, lateness=0)
    feed = Feed(e, t)
    feed.send("orders", [{"id": "a", "ts": BASE + 5, "amount": 3, "note": "x"}])
    feed.send("payments", [{"id": "a", "ts": BASE + 7, "paid": 1, "amount": 9}])
    saved = {pk: e.snapshot(pk) for pk in (("orders", 0), ("payments", 0))}

    stage2, t2 = WindowJoinStage("match", JoinConfig(type="join", left="orders", right="payments", on="id",
                                                     **fields), CTX), CommitTracker()
    e2 = engine(stage2, t2, lateness=0)
    for pk, (pos, blob) in saved.items():
        e2.assign(pk, 0)
        e2.restore(pk, pos, blob, 0)
    [em] = e2.close_all()
    assert asyncio.run(stage2.run(em.window, em.rows)) == [
        {"amount": 3, "left_ts": BASE + 5, "paid": 1, "right_ts": BASE + 7, "ts": BASE + 7}]
