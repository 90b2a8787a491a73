"""table_join in event time (rtstream.engine.temporal_state): each stream row meets its key's version as
of its own time, whatever order the sources are read in; checked against a plain as-of reference."""

import itertools
import random

import pytest

from rtstream.engine.commit_rule import CommitTracker
from rtstream.model.batch import Batch
from rtstream.model.record import Record
from rtstream.stages.table_join import TableJoinConfig, TableJoinStage
from tests.table_join_reference import as_of as reference
from tests.unit.engine.test_joins import BASE, CTX, MIN, Feed, engine, shuffled_within

TABLE, STREAM = ("users", 0), ("clicks", 0)


def as_of(changes, clicks, how, ttl_ms=None):
    return sorted(reference(changes, clicks, how, ttl_ms), key=lambda r: r["n"])


def stage_of(how="left", ttl=None, **kw):
    cfg = TableJoinConfig(type="table_join", stream="clicks", table="users", on="user", how=how, ttl=ttl, **kw)
    return TableJoinStage("enrich", cfg, CTX)


def setup(how="left", ttl=None, lateness=30_000, **kw):
    stage, t = stage_of(how, ttl, **kw), CommitTracker()
    e = engine(stage, t, lateness=lateness)
    feed = Feed(e, t)
    for pk in (TABLE, STREAM):  # the runtime assigns every source's partitions as it starts
        e.assign(pk, 0)
        feed.next[pk] = 0
    return stage, t, e, feed


def send_changes(feed, changes):
    """Table changes: a dict is a row, a str a tombstone of that key."""
    first = feed.next[TABLE]
    recs = [Record(c, first + i) if isinstance(c, dict) else Record(None, first + i, key=c.encode())
            for i, c in enumerate(changes)]
    feed.next[TABLE] = first + len(recs)
    dead = feed.e.process(Batch("users", 0, recs, feed.next[TABLE], decoded=True), now=0)
    feed.t.processed(TABLE, feed.next[TABLE])
    return dead


def rows_of(ems):
    return sorted((r for em in ems for r in em.rows), key=lambda r: r["n"])


def random_data(rnd, n_changes=120, n_clicks=200, tombstones=True):
    changes = []
    for i in range(n_changes):
        u = f"u{rnd.randrange(8)}"
        if tombstones and rnd.random() < 0.15:
            changes.append(u)
        else:
            changes.append({"user": u, "name": f"n{i}", "ts": BASE + i * 3_000})
    clicks = [{"user": f"u{rnd.randrange(10)}", "ts": BASE + rnd.randrange(6 * MIN), "n": i} for i in range(n_clicks)]
    return changes, sorted(clicks, key=lambda c: c["ts"])


@pytest.mark.parametrize("order", ["stream_first", "table_first", "interleaved"])
@pytest.mark.parametrize("how", ["inner", "left"])
def test_any_read_order_of_two_finite_sources_gives_the_as_of_rows(order, how):
    """The stranger's case: both sides finite, read in any order, the same rows (the as-of reference)."""
    rnd = random.Random(7)
    changes, clicks = random_data(rnd)
    stage, t, e, feed = setup(how)
    ems = []
    if order == "stream_first":
        assert feed.send("clicks", clicks) == []
        ems += feed.close()
        assert send_changes(feed, changes) == []
    elif order == "table_first":
        assert send_changes(feed, changes) == []
        ems += feed.close()
        assert feed.send("clicks", clicks) == []
    else:
        for i in range(0, 200, 10):
            assert feed.send("clicks", clicks[i:i + 10]) == []
            assert send_changes(feed, changes[i // 2:i // 2 + 5]) == []
            ems += feed.close()
        assert send_changes(feed, changes[100:]) == []
    e.finish(TABLE)
    e.finish(STREAM)
    out = rows_of(ems + feed.close(final=True))
    assert out == as_of(changes, clicks, how)
    assert len(out) >= 50 and any("name" in r for r in out)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_out_of_order_within_lateness_on_both_sides_equals_the_reference(seed):
    rnd = random.Random(seed)
    changes, clicks = random_data(rnd, tombstones=False)
    stage, t, e, feed = setup("left", lateness=25_000)
    arrivals = [("clicks", c) for c in shuffled_within(clicks, 20_000, rnd)]
    table = iter(shuffled_within(changes, 20_000, rnd))
    merged = []
    for a in arrivals:
        merged.append(a)
        if rnd.random() < 0.6:
            c = next(table, None)
            if c is not None:
                merged.append(("users", c))
    merged += [("users", c) for c in table]
    ems = []
    for src, group in itertools.groupby(merged, key=lambda p: p[0]):
        values = [v for _, v in group]
        assert (feed.send(src, values) if src == "clicks" else send_changes(feed, values)) == []
        ems += feed.close()  # windows close as the watermark moves: every row must be in time for its own
    assert stage.state_figures()[0] > 0
    e.finish(TABLE)
    e.finish(STREAM)
    ems += feed.close(final=True)
    assert rows_of(ems) == as_of(changes, clicks, "left")


def test_ttl_is_applied_at_the_stream_rows_time_on_replay():
    """FINDINGS item 9: an order at 00:06:00 met customer b's entry of 00:00:00 with ttl 5m."""
    stage, t, e, feed = setup("left", ttl="5m", lateness=5_000)
    orders = [{"user": "a", "ts": BASE + 30_000, "n": 1}, {"user": "b", "ts": BASE + 90_000, "n": 2},
              {"user": "b", "ts": BASE + 5 * MIN, "n": 3}, {"user": "b", "ts": BASE + 5 * MIN + 1, "n": 4},
              {"user": "a", "ts": BASE + 6 * MIN, "n": 5}]
    changes = [{"user": "b", "name": "silver", "ts": BASE}, {"user": "a", "name": "platinum", "ts": BASE + 3 * MIN}]
    assert feed.send("clicks", orders) == []  # the orders file is read first
    assert send_changes(feed, changes) == []
    e.finish(TABLE)
    e.finish(STREAM)
    out = rows_of(feed.close(final=True))
    assert [(r["n"], r.get("name")) for r in out] == [(1, None), (2, "silver"), (3, "silver"), (4, None),
                                                       (5, "platinum")]
    assert out == as_of(changes, orders, "left", ttl_ms=5 * MIN)


def test_a_tombstone_deletes_from_its_place_in_the_changelog_on():
    stage, t, e, feed = setup("inner", lateness=0)
    assert send_changes(feed, [{"user": "u1", "name": "a", "ts": BASE}, {"user": "u2", "name": "b", "ts": BASE + 10},
                               {"user": "u1", "name": "c", "ts": BASE + 20}, "u1"]) == []
    clicks = [{"user": "u1", "ts": BASE + 5, "n": 0}, {"user": "u1", "ts": BASE + 19, "n": 1},
              {"user": "u1", "ts": BASE + 20, "n": 2}, {"user": "u1", "ts": BASE + 30, "n": 3}]
    assert feed.send("clicks", clicks) == []
    e.finish(TABLE)
    e.finish(STREAM)
    out = rows_of(feed.close(final=True))
    # the delete follows u1's change of BASE+20: a click at BASE+20 still finds no u1 (the delete wins the tie)
    assert [(r["n"], r["name"]) for r in out] == [(0, "a"), (1, "a")]


def test_a_stream_row_waits_for_the_tables_watermark_and_holds_its_commit():
    stage, t, e, feed = setup("left", lateness=0)
    assert send_changes(feed, [{"user": "u1", "name": "a", "ts": BASE}]) == []
    feed.close()
    assert feed.send("clicks", [{"user": "u1", "ts": BASE + MIN + 5, "n": 0}]) == []
    assert feed.close() == [] and stage.state_figures()[0] == 2  # one version, one waiting row
    assert t.safe(STREAM) == 0  # the waiting row holds the stream's commit
    assert send_changes(feed, [{"user": "u1", "name": "b", "ts": BASE + MIN + 5}]) == []  # at the same time
    assert feed.close() == []  # the table's watermark is at the row's time, not past it: still waiting
    assert send_changes(feed, [{"user": "u9", "name": "z", "ts": BASE + 3 * MIN}]) == []
    assert feed.send("clicks", [{"user": "u9", "ts": BASE + 3 * MIN + 1, "n": 1}]) == []
    [em] = feed.close()  # the row is joined with the version as of its time, and its window closes
    assert [(r["n"], r["name"]) for r in em.rows] == [(0, "b")]
    assert t.safe(STREAM) == 1  # written (Feed.close tells the engine); the second row waits and holds its own
    # u1's first version is of no use once every stream row is past BASE+1m+5: evicted; the last stays
    versions = stage.stateful_step.versions
    assert sorted(versions) == ["u1", "u9"] and [v[2]["name"] for v in versions["u1"]] == ["b"]
    # without a checkpoint the table's commit stays at its first change: a restart must meet the evicted
    # version again (the row that met it is in a window not yet committed); a saved checkpoint lets go
    assert t.safe(TABLE) == 0
    pos, _ = e.snapshot(TABLE)
    e.checkpoint_saved(TABLE, pos, e.epoch_of(TABLE))
    assert t.safe(TABLE) == 3


def test_a_row_beyond_max_waiting_is_dead_lettered_and_a_late_table_change_applies_to_rows_to_come():
    stage, t, e, feed = setup("left", lateness=0, max_waiting=2)
    dead = feed.send("clicks", [{"user": "u1", "ts": BASE + i, "n": i} for i in range(3)])
    assert [(d.reason, d.offset) for d in dead] == [("stage_error", 2)]
    assert "max_waiting = 2 stream rows already wait for the table 'users'" in dead[0].detail
    assert send_changes(feed, [{"user": "u1", "name": "a", "ts": BASE + MIN}]) == []
    assert len(rows_of(feed.close())) == 0  # joined, in the window of 00:00, which is not closed yet
    # behind the time the stream was joined up to (00:01): the rows joined keep what they met, the
    # rows to come meet it (as Flink's temporal join does)
    assert send_changes(feed, [{"user": "u1", "name": "late", "ts": BASE + 1}]) == []
    assert stage.stateful_step.late_changes == 1
    assert feed.send("clicks", [{"user": "u1", "ts": BASE + MIN - 1, "n": 5}]) == []
    e.finish(TABLE)
    e.finish(STREAM)
    assert [r.get("name") for r in rows_of(feed.close(final=True))] == [None, None, "late"]


def test_a_checkpoint_mid_state_restores_the_waiting_rows_and_versions():
    rnd = random.Random(11)
    changes, clicks = random_data(rnd)
    want = as_of(changes, clicks, "left")
    stage, t, e, feed = setup("left", lateness=0)
    assert send_changes(feed, changes[:60]) == []
    assert feed.send("clicks", clicks) == []
    ems = feed.close()
    blobs = {pk: e.snapshot(pk) for pk in (TABLE, STREAM)}
    assert stage.stateful_step.waiting  # rows still wait for the table
    # a new process restores both partitions and reads on from the checkpoint's positions
    stage2, t2 = stage_of("left"), CommitTracker()
    e2 = engine(stage2, t2, lateness=0)
    feed2 = Feed(e2, t2)
    for pk, (pos, blob) in blobs.items():
        e2.assign(pk, 0)
        e2.restore(pk, pos, blob, 0)
        feed2.next[pk] = pos
    ems2 = feed2.close()
    assert send_changes(feed2, changes[60:]) == []
    e2.finish(TABLE)
    e2.finish(STREAM)
    ems2 += feed2.close(final=True)
    assert rows_of(ems + ems2) == want


def test_processing_time_is_kept_on_request():
    stage, t, e, feed = setup("left", time="processing")
    assert feed.send("clicks", [{"user": "u1", "ts": BASE, "n": 0}]) == []
    assert send_changes(feed, [{"user": "u1", "name": "a", "ts": BASE}]) == []
    assert feed.send("clicks", [{"user": "u1", "ts": BASE, "n": 1}]) == []
    out = rows_of(feed.close(final=True))
    assert [r.get("name") for r in out] == [None, "a"]  # the table as it was when each row was folded


def test_a_row_released_after_a_later_offset_lowers_its_windows_hold():
    """Rows are let go in time order, not offset order: the window must hold the older offset."""
    stage, t, e, feed = setup("left", lateness=0)
    assert send_changes(feed, [{"user": "u", "name": "a", "ts": BASE}]) == []
    assert feed.send("clicks", [{"user": "u", "ts": BASE + 50_000, "n": 0}, {"user": "u", "ts": BASE + 10_000, "n": 1}]) == []
    assert send_changes(feed, [{"user": "u", "name": "b", "ts": BASE + 20_000}]) == []
    assert feed.close() == []  # n=1 joined into 00:00's window (its first row, offset 1); n=0 waits at 0
    assert t.safe(STREAM) == 0
    assert send_changes(feed, [{"user": "u", "name": "c", "ts": BASE + 55_000}]) == []
    assert feed.close() == []  # n=0 joins the same open window now
    assert t.safe(STREAM) == 0  # the window holds offset 0 (it held 1: a crash would have lost n=0)
    e.finish(TABLE)
    e.finish(STREAM)
    assert [(r["n"], r["name"]) for r in rows_of(feed.close(final=True))] == [(0, "b"), (1, "a")]


def test_a_released_row_refused_by_its_window_holds_the_commit_until_its_dead_letter_is_written():
    stage, t = stage_of("left"), CommitTracker()
    e = engine(stage, t, lateness=0, max_window_records=1)
    feed = Feed(e, t)
    for pk in (TABLE, STREAM):
        e.assign(pk, 0)
        feed.next[pk] = 0
    assert feed.send("clicks", [{"user": "u", "ts": BASE + 1, "n": 0}, {"user": "u", "ts": BASE + 2, "n": 1}]) == []
    assert send_changes(feed, [{"user": "u", "name": "a", "ts": BASE + 10}]) == []
    assert feed.close() == []
    dead = e.take_dead()
    assert [(d.reason, d.offset) for d in dead] == [("window_full", 1)] and e.take_dead() == []
    assert t.safe(STREAM) == 0  # n=0's window
    e.finish(TABLE)
    e.finish(STREAM)
    [em] = feed.close(final=True)
    assert t.safe(STREAM) == 1  # the refused row is not in the dead-letter file yet
    e.dead_written(dead)
    assert t.safe(STREAM) == 2


def test_a_checkpoint_of_the_processing_time_table_restores_into_event_time_and_back():
    """Switching `time` keeps the table a checkpoint covers (its changelog is not read again)."""
    stage, t, e, feed = setup("left", time="processing")
    assert send_changes(feed, [{"user": "u1", "name": "a", "ts": BASE}, {"user": "u2", "name": "b", "ts": BASE}]) == []
    pos, blob = e.snapshot(TABLE)
    stage2, t2 = stage_of("left"), CommitTracker()
    e2 = engine(stage2, t2, lateness=0)
    for pk in (TABLE, STREAM):
        e2.assign(pk, 0)
    e2.restore(TABLE, pos, blob, 0)
    assert sorted(stage2.stateful_step.versions) == ["u1", "u2"]
    pos2, blob2 = e2.snapshot(TABLE)
    stage3, t3 = stage_of("left", time="processing"), CommitTracker()
    e3 = engine(stage3, t3, lateness=0)
    e3.assign(TABLE, 0)
    e3.restore(TABLE, pos2, blob2, 0)
    assert sorted(stage3.stateful_step.values) == ["u1", "u2"]
    feed2 = Feed(e2, t2)
    feed2.next = {TABLE: pos, STREAM: 0}
    assert feed2.send("clicks", [{"user": "u2", "ts": BASE + 1, "n": 0}]) == []
    e2.finish(TABLE)
    e2.finish(STREAM)
    assert [r["name"] for r in rows_of(feed2.close(final=True))] == ["b"]


def test_a_stream_row_behind_the_evicted_versions_is_dead_lettered_as_late():
    stage, t, e, feed = setup("left", lateness=0)
    assert send_changes(feed, [{"user": "u", "name": "a", "ts": BASE}, {"user": "u", "name": "b", "ts": BASE + 10_000}]) == []
    assert feed.send("clicks", [{"user": "u", "ts": BASE + 20_000, "n": 0}]) == []
    assert send_changes(feed, [{"user": "x", "name": "c", "ts": BASE + 30_000}]) == []
    feed.close()  # the stream is at 00:00:20: "a" is of no use to any row to come
    assert [v[2]["name"] for v in stage.stateful_step.versions["u"]] == ["b"]
    dead = feed.send("clicks", [{"user": "u", "ts": BASE + 5_000, "n": 1}])
    assert [(d.reason, d.offset) for d in dead] == [("stage_error", 1)]
    assert dead[0].detail == ("ValueError: late: the table's versions before 2026-01-01T00:00:20Z are evicted "
                              "(the row's time is 2026-01-01T00:00:05Z)")


@pytest.mark.parametrize("time", ["event", "processing"])
def test_a_tombstone_deletes_an_integer_keyed_entry(time):
    """A changelog keyed by an integer field carries the key as text (b"7"): the tombstone deletes the
    entry of 7 (it deleted nothing), and an entry keyed "7" (a string) is the text's own."""
    stage, t, e, feed = setup("inner", lateness=0, time=time)
    assert send_changes(feed, [{"user": 7, "name": "a", "ts": BASE}, {"user": "8", "name": "b", "ts": BASE},
                               {"user": 8, "name": "c", "ts": BASE}, "7", "8"]) == []
    clicks = [{"user": 7, "ts": BASE + 10, "n": 0}, {"user": "8", "ts": BASE + 10, "n": 1},
              {"user": 8, "ts": BASE + 10, "n": 2}]
    assert feed.send("clicks", clicks) == []
    e.finish(TABLE)
    e.finish(STREAM)
    out = rows_of(feed.close(final=True))
    assert [(r["n"], r["name"]) for r in out] == [(2, "c")]  # 7 deleted; "8" deleted (its text), 8 kept
