"""Journaled marks adopted together (rtstream.engine.partition_snapshot.adopt_marks): what each
partition takes as written does not depend on the order the partitions are named in."""

import pytest

from rtstream.engine.commit_rule import CommitTracker
from rtstream.model.batch import Batch
from rtstream.model.positions import Mark
from tests.unit.engine.test_engine import BASE, MIN, batch, engine

A, B = ("a", 0), ("b", 0)


def records(source, items, first=0):
    return Batch(source, 0, batch(0, items, first).records, first + len(items), decoded=True)


@pytest.mark.parametrize("order", ["ab", "ba"])
def test_a_window_only_adopting_partitions_hold_is_dropped_whatever_the_order(order):
    """`a` brings 00:00 back open (a checkpoint older than the mark), `b` holds nothing of it yet but
    replays a record of it below its mark: both marks say 00:00 was written whole. Named `b` first,
    `b` spared 00:00 for `a`, which then dropped its share: 00:00 written again from `b`'s alone."""
    t = CommitTracker()
    e = engine(t)
    for pk in (A, B):
        e.assign(pk, 0)
    e.process(records("a", [("x", 1000)]), 0)  # 00:00 open from a
    t.processed(A, 1)
    marks = {A: Mark(BASE + MIN, 1), B: Mark(BASE + MIN, 1)}
    assert e.adopt_marks({pk: marks[pk] for pk in ((A, B) if order == "ab" else (B, A))}) == {A, B}
    assert e.open_windows() == 0 and t.safe(A) == 1  # a's share of 00:00 dropped: it holds nothing
    assert e.process(records("b", [("x", 2000), ("x", MIN + 5)]), 0) == []
    t.processed(B, 2)
    assert e.replayed_done == 2  # a's dropped pane and b's record of 00:00
    [em] = e.close_all()
    assert em.window.start_ms == BASE + MIN and [r["n"] for r in em.rows] == [1]  # 00:00 not written again


@pytest.mark.parametrize("order", ["ab", "ba"])
def test_a_window_a_partition_without_a_mark_holds_is_spared_by_every_adopting_one(order):
    """`c` keeps 00:00 open (no journaled mark): it is written again by its close, so `a` keeps its
    restored share and `b` folds its record of it again, whatever the order."""
    t = CommitTracker()
    e = engine(t)
    for pk in (A, B, ("c", 0)):
        e.assign(pk, 0)
    e.process(records("a", [("x", 1000)]), 0)
    e.process(records("c", [("x", 3000)]), 0)
    marks = {A: Mark(BASE + 2 * MIN, 1), B: Mark(BASE + 2 * MIN, 1)}
    e.adopt_marks({pk: marks[pk] for pk in ((A, B) if order == "ab" else (B, A))})
    assert e.process(records("b", [("x", 2000)]), 0) == []
    for pk in (A, B, ("c", 0)):
        t.processed(pk, 1)
    [em] = e.close_all()
    assert em.window.start_ms == BASE and [r["n"] for r in em.rows] == [3]  # every partition's record
