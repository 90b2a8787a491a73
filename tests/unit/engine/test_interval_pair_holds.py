"""An inner interval join's row that made a pair keeps holding its partition's commit, and stays in
its partition's checkpoint, until the pair's window is written (rtstream.engine.pair_holds): a
restart from either brings it back for the replayed partner. Before, the row was let go when the
watermark passed its last match time, while the pair's window (held only by the partner's
partition) was still open."""

from rtstream.engine.commit_rule import CommitTracker
from tests.unit.engine.test_joins import BASE, Feed, engine, interval_stage


def started(tracker=None):
    stage, t = interval_stage("0s", "20s"), tracker or CommitTracker()
    e = engine(stage, t, lateness=0)
    return stage, e, t, Feed(e, t)


def pair_then_evict():
    """a@50s meets b@65s: their pair lands in the window [60s, 120s); the watermark then passes 70s,
    the last time a `b` could meet that `a`, long before the window closes."""
    stage, e, t, feed = started()
    feed.send("a", [{"k": 1, "ts": BASE + 50_000, "a": 0}])
    feed.send("b", [{"k": 1, "ts": BASE + 65_000, "b": 0}])
    feed.send("a", [{"k": 9, "ts": BASE + 80_000}])
    feed.send("b", [{"k": 8, "ts": BASE + 80_000}])
    assert feed.close() == []  # nothing closes yet: the pair's window is open
    return stage, e, t, feed


def test_a_row_that_made_a_pair_holds_its_commit_until_the_pairs_window_is_written():
    stage, e, t, feed = pair_then_evict()
    # the watermark (80s) passed a@50s's last match time (70s): it stopped matching, but its pair
    # is not written yet, so its partition still may not commit past it
    assert t.safe(("a", 0)) == 0
    assert stage.stateful_step.debts.retired and stage.state_figures()[0] == 3  # a@50s, a@80s, b@80s
    feed.send("b", [{"k": 1, "ts": BASE + 70_000, "b": 1}])  # in a@50s's range, after the watermark: no pair
    feed.send("a", [{"k": 6, "ts": BASE + 130_000}])
    feed.send("b", [{"k": 5, "ts": BASE + 130_000}])
    [em] = feed.close()  # [60s, 120s) closes and is written: the next pass lets the row go
    assert [(r["a"], r["b"]) for r in em.rows if "b" in r and "a" in r] == [(0, 0)]
    assert t.safe(("a", 0)) == 0
    feed.close()
    assert t.safe(("a", 0)) == 2 and not stage.stateful_step.debts.retired


def test_a_row_with_no_pair_goes_when_the_watermark_passes_it():
    stage, e, t, feed = started()
    feed.send("a", [{"k": 1, "ts": BASE + 50_000}])
    feed.send("b", [{"k": 2, "ts": BASE + 65_000}])
    feed.send("a", [{"k": 9, "ts": BASE + 80_000}])
    feed.send("b", [{"k": 8, "ts": BASE + 80_000}])
    feed.close()
    assert t.safe(("a", 0)) == 1 and not stage.stateful_step.debts.retired


def test_a_restart_from_the_rows_checkpoint_and_the_partners_commit_rebuilds_the_pair():
    stage, e, t, feed = pair_then_evict()
    pos, blob = e.snapshot(("a", 0))  # a's checkpoint, taken after its row stopped matching
    assert pos == 2
    # the kill: `b` restarts from its commit (0, held by the pair's open window), `a` from its checkpoint
    stage2, e2, t2, feed2 = started()
    e2.assign(("a", 0), 0)
    e2.restore(("a", 0), pos, blob, 0)
    feed2.next[("a", 0)] = pos
    feed2.send("b", [{"k": 1, "ts": BASE + 65_000, "b": 0}, {"k": 8, "ts": BASE + 80_000}])
    feed2.send("a", [{"k": 6, "ts": BASE + 130_000}])
    feed2.send("b", [{"k": 5, "ts": BASE + 130_000}])
    rows = [r for em in feed2.close() for r in em.rows]
    assert [(r["a"], r["b"]) for r in rows if "a" in r and "b" in r] == [(0, 0)]
