"""A partition taking the mark this process saved for it before a commit round whose own commit was
cut (rtstream.runtime.written_marks): its records of written windows are skipped on replay, a
restored checkpoint's pane of them is dropped, and a window the process holds open from another
partition is never given up for it."""

from rtstream.engine.commit_rule import CommitTracker
from rtstream.model.batch import Batch
from rtstream.model.positions import Mark
from tests.unit.engine.test_engine import BASE, MIN, batch, engine


def two(items_a, items_b):
    """A batch of source `a` and one of source `b` (partition 0 each), from offset 0."""
    return tuple(Batch(name, 0, batch(0, items).records, len(items), decoded=True)
                 for name, items in (("a", items_a), ("b", items_b)))


def test_the_partition_behind_skips_its_records_of_a_written_window():
    t = CommitTracker()
    e = engine(t)
    for pk in (("a", 0), ("b", 0)):
        e.assign(pk, 0)
    e.seed(("a", 0), Mark(BASE + MIN, 2))  # a's commit landed: 00:00 is written
    assert e.adopt_written(("b", 0), Mark(BASE + MIN, 2))  # b's did not; its journaled mark
    assert not e.adopt_written(("b", 0), Mark(BASE + MIN, 2))  # says nothing more the second time
    ba, bb = two([("x", MIN + 5)], [("x", 1000), ("x", MIN + 9)])
    assert e.process(bb, 0) == []  # the 00:00 record is skipped as written, not dead-lettered as late
    e.process(ba, 0)
    t.processed(("a", 0), 1)
    t.processed(("b", 0), 2)
    assert e.replayed_done == 1 and e.close_ready(0, 0) == []  # 00:00 is not written again
    mark = e.ledger.mark(("b", 0))  # b's next commit carries it (or a later one)
    assert mark is not None and mark.written_upto >= BASE + MIN and mark.next_offset == 2
    [em] = e.close_all()
    assert em.window.start_ms == BASE + MIN and [r["n"] for r in em.rows] == [2]


def test_a_restored_pane_older_than_the_mark_is_dropped_and_frees_the_commit():
    t = CommitTracker()
    e = engine(t)
    e.assign(("b", 0), 0)
    _, bb = two([], [("x", 1000)])
    e.process(bb, 0)
    t.processed(("b", 0), 1)
    pos, blob = e.snapshot(("b", 0))  # 00:00 open in the checkpoint; written after it
    t2 = CommitTracker()
    e2 = engine(t2)
    e2.assign(("b", 0), 0)
    assert e2.restore(("b", 0), pos, blob, 0) == 1 and t2.safe(("b", 0)) == 0
    assert e2.adopt_written(("b", 0), Mark(BASE + MIN, 3))
    assert t2.safe(("b", 0)) == 1 and e2.open_windows() == 0 and e2.close_all() == []


def test_a_window_held_open_by_another_partition_is_not_given_up():
    """A rebalance mid-run: `a` holds 00:00 open here, so `b` folds its records of it again (the
    window is written whole by its close) and only the windows before it are taken as written."""
    t = CommitTracker()
    e = engine(t)
    e.assign(("a", 0), 0)
    ba, _ = two([("x", MIN + 1000)], [])
    e.process(ba, 0)  # 00:01 is open from a
    e.assign(("b", 0), 0, epoch=1)
    assert e.adopt_written(("b", 0), Mark(BASE + 3 * MIN, 5))
    assert e._seeds[("b", 0)].written_upto == BASE + 2 * MIN - 1  # capped below the open window's end
    _, bb = two([], [("x", 1000), ("x", MIN + 2000)])
    assert e.process(bb, 0) == []
    assert e.replayed_done == 1  # the 00:00 record: skipped
    t.processed(("a", 0), 1)
    t.processed(("b", 0), 2)
    [em] = e.close_all()
    assert em.window.start_ms == BASE + MIN and [r["n"] for r in em.rows] == [2]  # both partitions' records


def test_count_windows_keep_their_checkpoints_marks():
    e = engine()
    e.use_counts(3)
    e.assign(("b", 0), 0)
    assert not e.adopt_written(("b", 0), Mark(BASE + MIN, 2))
