"""A row a saved checkpoint covers is safe only while a restart uses that checkpoint; a restart whose
commit is past the checkpoint replays from the commit without it (rtstream.runtime.partitions). So
while a join keeps any row from before its partition's last checkpoint, the commit stops at that
checkpoint's position (rtstream.engine.stateful). Before, it stopped only at the oldest row kept
after the checkpoint: once those were replaced or evicted, the commit ran past the checkpoint, and
a restart lost every table entry (or interval row) the checkpoint held."""

from rtstream.engine.commit_rule import CommitTracker
from rtstream.model.batch import Batch
from rtstream.model.record import Record
from tests.unit.engine.test_joins import BASE, Feed, engine, interval_stage, table_stage


def checkpoint(e, pk):
    pos, blob = e.snapshot(pk)
    e.checkpoint_saved(pk, pos, e.epoch_of(pk))
    return pos, blob


def test_a_table_commit_stops_at_the_checkpoint_while_it_keeps_entries_from_before_it():
    stage, t = table_stage("inner"), CommitTracker()
    e = engine(stage, t)
    feed, pk = Feed(e, t), ("users", 0)
    feed.send("users", [{"user": f"u{i}", "name": str(i), "ts": BASE} for i in range(4)])
    pos, blob = checkpoint(e, pk)
    assert pos == 4 and t.safe(pk) == 4
    # after the checkpoint, u9 comes and goes again: nothing kept is newer than the checkpoint
    feed.send("users", [{"user": "u9", "name": "x", "ts": BASE}])
    e.process(Batch("users", 0, [Record(None, 5, key=b"u9")], 6), 0)
    t.processed(pk, 6)
    assert sorted(stage.stateful_step.values) == ["u0", "u1", "u2", "u3"]
    assert t.safe(pk) == 4  # a commit at 6 would make a restart skip the checkpoint, and u0..u3 with it
    pos, _ = checkpoint(e, pk)  # the next checkpoint holds them: the commit moves on to it
    assert pos == 6 and t.safe(pk) == 6


def test_a_table_that_keeps_nothing_from_before_the_checkpoint_holds_nothing():
    stage, t = table_stage("inner"), CommitTracker()
    e = engine(stage, t)
    feed, pk = Feed(e, t), ("users", 0)
    feed.send("users", [{"user": "u1", "ts": BASE}])
    checkpoint(e, pk)
    e.process(Batch("users", 0, [Record(None, 1, key=b"u1")], 2), 0)
    t.processed(pk, 2)
    assert t.safe(pk) == 2 and stage.state_figures()[0] == 0


def test_an_interval_commit_stops_at_the_checkpoint_while_a_row_from_before_it_may_still_match():
    stage, t = interval_stage("0s", "20s"), CommitTracker()
    e = engine(stage, t, lateness=0)
    feed, pk = Feed(e, t), ("a", 0)
    feed.send("a", [{"k": 1, "ts": BASE + 30_000}])  # may meet a `b` until 50s
    checkpoint(e, pk)
    feed.send("a", [{"k": 2, "ts": BASE}, {"k": 3, "ts": BASE + 40_000}])  # 0s: out of order, within lateness
    feed.send("b", [{"k": 9, "ts": BASE + 40_000}])
    feed.close()  # the watermark (40s) passes 0s + 20s: that row goes; the one at 30s is still kept
    assert t.safe(pk) == 1
