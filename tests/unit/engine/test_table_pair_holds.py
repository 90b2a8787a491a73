"""A table join's entry that enriched a stream row keeps its partition's commit, and its place in the
checkpoint, until that row's window is written, even once its ttl expires it or a newer value replaces
it (rtstream.engine.pair_holds, as an interval join's row). Before, the table's partition could
commit past it while the enriched row's window was on its way to the sinks: a kill then, and the
replayed row found no entry (an inner join dropped it; the sink replaced its window whole)."""

from rtstream.engine.commit_rule import CommitTracker
from tests.unit.engine.test_joins import BASE, Feed, engine, table_stage


def expired_while_its_row_is_unwritten():
    """u1 enriches a click at 50s; the watermark then passes u1's ttl (1m) and the click's window
    [0, 1m) closes in the same pass, on its way to the sinks but not written."""
    stage, t = table_stage("inner", ttl="1m"), CommitTracker()
    e = engine(stage, t, lateness=0)
    feed = Feed(e, t)
    feed.send("users", [{"user": "u1", "name": "a", "ts": BASE}])
    feed.send("clicks", [{"user": "u1", "ts": BASE + 50_000}])
    feed.send("users", [{"user": "u2", "name": "b", "ts": BASE + 70_000}])
    feed.send("clicks", [{"user": "u2", "ts": BASE + 70_000}])
    ems = e.close_ready(0, 0)
    assert [(em.window.start_ms - BASE, [r["name"] for r in em.rows]) for em in ems] == [(0, ["a"])]
    assert sorted(stage.stateful_step.values) == ["u2"]  # u1 expired: no click meets it any more
    return stage, e, t, feed, ems


def test_an_expired_entry_holds_its_commit_until_the_window_of_the_row_it_enriched_is_written():
    stage, e, t, feed, ems = expired_while_its_row_is_unwritten()
    assert t.safe(("users", 0)) == 0  # a commit at 1 would make a restart replay the click without u1
    for em in ems:
        e.emitted(em)
    e.close_ready(0, 0)  # written: the next pass lets it go
    assert t.safe(("users", 0)) == 1 and not stage.stateful_step.debts.retired


def test_a_restart_from_the_tables_checkpoint_enriches_the_replayed_row_again():
    stage, e, t, feed, ems = expired_while_its_row_is_unwritten()
    pos, blob = e.snapshot(("users", 0))
    # the kill: clicks restart from their commit (0: the window was not written), users from the checkpoint
    stage2, t2 = table_stage("inner", ttl="1m"), CommitTracker()
    e2 = engine(stage2, t2, lateness=0)
    e2.assign(("users", 0), 0)
    e2.restore(("users", 0), pos, blob, 0)
    feed2 = Feed(e2, t2)
    feed2.next[("users", 0)] = pos
    feed2.send("clicks", [{"user": "u1", "ts": BASE + 50_000}, {"user": "u2", "ts": BASE + 70_000}])
    rows = [r for em in feed2.close(final=True) for r in em.rows]
    assert sorted((r["user"], r["name"]) for r in rows) == [("u1", "a"), ("u2", "b")]


def test_a_replaced_entry_holds_until_its_row_is_written_and_the_newest_is_what_a_restore_keeps():
    stage, t = table_stage("left"), CommitTracker()
    e = engine(stage, t, lateness=0)
    feed = Feed(e, t)
    feed.send("users", [{"user": "u1", "name": "a", "ts": BASE}])
    feed.send("clicks", [{"user": "u1", "ts": BASE + 10_000}])
    feed.send("users", [{"user": "u1", "name": "b", "ts": BASE + 20_000}])
    assert t.safe(("users", 0)) == 0  # "a" enriched a row whose window is open
    pos, blob = e.snapshot(("users", 0))
    stage2, t2 = table_stage("left"), CommitTracker()
    e2 = engine(stage2, t2, lateness=0)
    e2.assign(("users", 0), 0)
    e2.restore(("users", 0), pos, blob, 0)
    assert {k: v[0]["name"] for k, v in stage2.stateful_step.values.items()} == {"u1": "b"}
    assert stage2.state_figures()[0] == 1 and t2.safe(("users", 0)) == 2
