"""Joins in the window engine, each checked against a plain reference computation over the same input."""

import asyncio
import itertools
import random
from types import SimpleNamespace

import pytest

from rtstream.engine.commit_rule import CommitTracker
from rtstream.engine.window_engine import WindowEngine
from rtstream.model.batch import Batch
from rtstream.model.record import Record
from rtstream.stages.join import IntervalJoinConfig, IntervalJoinStage, JoinConfig, WindowJoinStage
from rtstream.stages.table_join import TableJoinConfig, TableJoinStage

MIN = 60_000
BASE = 1_767_225_600_000
CTX = SimpleNamespace(extra={})


def engine(stage, tracker=None, lateness=30_000, size=MIN, max_window_records=100_000):
    part = getattr(stage, "record_part", stage)
    return WindowEngine(size_ms=size, lateness_ms=lateness, idle_timeout_s=3600, time_mode="event", time_field="ts",
                        record_stages=[part], aggregator=None, tracker=tracker or CommitTracker(),
                        max_window_records=max_window_records)


class Feed:
    """Batches of several sources, one partition each, with their offsets counted."""

    def __init__(self, e, tracker):
        self.e, self.t, self.next = e, tracker, {}

    def send(self, source, values):
        pk = (source, 0)
        if pk not in self.next:
            self.e.assign(pk, 0)
            self.next[pk] = 0
        first = self.next[pk]
        recs = [Record(v, first + i) for i, v in enumerate(values)]
        self.next[pk] = first + len(recs)
        dead = self.e.process(Batch(source, 0, recs, self.next[pk], decoded=True), now=0)
        self.t.processed(pk, self.next[pk])
        return dead

    def close(self, final=False):
        ems = self.e.close_all() if final else self.e.close_ready(0, 0)
        for em in ems:
            self.e.emitted(em)
        return ems


def window_join(how):
    return WindowJoinStage("match", JoinConfig(type="join", left="orders", right="payments", on="id", how=how), CTX)


def shuffled_within(items, lateness_ms, rnd):
    """Arrival order: sorted by time plus a random delay under the lateness, so nothing is late."""
    return [v for _, v in sorted(((v["ts"] + rnd.randrange(lateness_ms), v) for v in items),
                                 key=lambda p: p[0])]


@pytest.mark.parametrize("how", ["inner", "left"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_window_join_out_of_order_within_lateness_equals_the_reference(how, seed):
    rnd = random.Random(seed)
    orders = [{"id": f"k{rnd.randrange(12)}", "ts": BASE + rnd.randrange(10 * MIN), "amount": i}
              for i in range(300)]
    payments = [{"id": f"k{rnd.randrange(15)}", "ts": BASE + rnd.randrange(10 * MIN), "paid": i, "amount": -i}
                for i in range(250)]
    stage, t = window_join(how), CommitTracker()
    feed = Feed(engine(stage, t), t)
    arrivals = [("orders", v) for v in shuffled_within(orders, 25_000, rnd)]
    pay = iter(shuffled_within(payments, 25_000, rnd))
    merged = []
    for src, v in arrivals:  # interleave the two sources in small batches of either
        merged.append((src, v))
        if rnd.random() < 0.45:
            p = next(pay, None)
            if p is not None:
                merged.append(("payments", p))
    merged += [("payments", p) for p in pay]
    out = []
    for src, group in itertools.groupby(merged, key=lambda p: p[0]):
        assert feed.send(src, [v for _, v in group]) == []  # nothing late, nothing refused
        for em in feed.close():
            out += asyncio.run(stage.run(em.window, em.rows))
    for em in feed.close(final=True):
        out += asyncio.run(stage.run(em.window, em.rows))

    expected = []
    for o in orders:
        w = (o["ts"] - BASE) // MIN
        matches = [p for p in payments if p["id"] == o["id"] and (p["ts"] - BASE) // MIN == w]
        for p in matches:
            expected.append({"id": o["id"], "left_ts": o["ts"], "left_amount": o["amount"], "right_ts": p["ts"],
                             "paid": p["paid"], "right_amount": p["amount"], "ts": max(o["ts"], p["ts"])})
        if not matches and how == "left":  # the same fields, the right side's null (rtstream.engine.join_rows)
            expected.append({"id": o["id"], "left_ts": o["ts"], "left_amount": o["amount"], "right_ts": None,
                             "paid": None, "right_amount": None, "ts": o["ts"]})
    key = lambda r: sorted(r.items())  # noqa: E731
    assert sorted(map(key, out)) == sorted(map(key, expected))
    assert len(out) > 50
    assert all(type(r) is dict for r in out)  # plain rows leave the join, not the marked ones


def test_window_join_bounds_rows_per_window_and_side():
    stage = WindowJoinStage("match", JoinConfig(type="join", left="orders", right="payments", on="id",
                                                max_rows=3), CTX)
    t = CommitTracker()
    feed = Feed(engine(stage, t), t)
    dead = feed.send("orders", [{"id": "a", "ts": BASE + i} for i in range(5)])
    assert [(d.reason, d.offset) for d in dead] == [("stage_error", 3), ("stage_error", 4)]
    assert "max_rows = 3" in dead[0].detail and "left side" in dead[0].detail
    assert feed.send("payments", [{"id": "a", "ts": BASE + i} for i in range(3)]) == []  # the other side has its own
    feed.send("orders", [{"id": "a", "ts": BASE + MIN}])  # the next window starts empty
    assert stage.tagger.figures()[0] == 7


def interval_stage(lower, upper):
    cfg = IntervalJoinConfig(type="interval_join", left="a", right="b", on="k", lower=lower, upper=upper)
    return IntervalJoinStage("ij", cfg, CTX)


def test_interval_join_both_bounds_and_state_back_to_its_floor():
    rnd = random.Random(7)
    lower, upper = -10_000, 20_000
    stage, t = interval_stage("-10s", "20s"), CommitTracker()
    e = engine(stage, t, lateness=5_000, size=MIN)
    feed = Feed(e, t)
    a_rows = [{"k": rnd.randrange(5), "ts": BASE + rnd.randrange(5 * MIN), "a": i} for i in range(200)]
    b_rows = [{"k": rnd.randrange(5), "ts": BASE + rnd.randrange(5 * MIN), "b": i} for i in range(200)]
    a_in, b_in = shuffled_within(a_rows, 4_000, rnd), shuffled_within(b_rows, 4_000, rnd)
    out = []
    for i in range(0, 200, 10):
        feed.send("a", a_in[i:i + 10])
        feed.send("b", b_in[i:i + 10])
        for em in feed.close():
            out += em.rows
    peak = stage.state_figures()[0]
    for em in feed.close(final=True):
        out += em.rows
    expected = [(x["a"], y["b"]) for x in a_rows for y in b_rows
                if x["k"] == y["k"] and x["ts"] + lower <= y["ts"] <= x["ts"] + upper]
    assert sorted((r["a"], r["b"]) for r in out) == sorted(expected)
    for r in out:  # the pair's time is the later row's: it lands in that row's window
        assert r["ts"] == max(r["left_ts"], r["right_ts"])
    # state is bounded by the watermark: far fewer than the 400 rows seen are kept
    assert 0 < peak < 150
    # the watermark passes everything: the state returns to its floor, and holds no commit
    feed.send("a", [{"k": 99, "ts": BASE + 60 * MIN}])
    feed.send("b", [{"k": 98, "ts": BASE + 60 * MIN}])
    feed.close()
    # rows that made pairs stay kept until their pairs' windows are written (rtstream.engine.pair_holds):
    # that close wrote them, so the next pass lets them go
    assert stage.state_figures()[0] > 2 and t.safe(("a", 0)) < 200
    feed.close()
    assert stage.state_figures()[:2] == (2, 2)  # only the two newest rows
    assert t.safe(("a", 0)) == 200 and t.safe(("b", 0)) == 200  # held by those two rows' offsets only


def test_interval_row_holds_its_offset_until_evicted():
    stage, t = interval_stage("0s", "1m"), CommitTracker()
    feed = Feed(engine(stage, t, lateness=0, size=MIN), t)
    feed.send("a", [{"k": 1, "ts": BASE}])
    feed.send("b", [{"k": 2, "ts": BASE + 30_000}])
    feed.close()
    assert t.safe(("a", 0)) == 0  # a row of `a` could still meet a `b` until BASE + 1m
    feed.send("b", [{"k": 2, "ts": BASE + 61_000}])
    feed.close()
    assert t.safe(("a", 0)) == 0  # `a` itself has not moved on: the watermark waits for it
    feed.send("a", [{"k": 3, "ts": BASE + 62_000}])
    feed.close()
    assert t.safe(("a", 0)) == 1  # evicted: only the newer row holds its partition


def test_interval_join_bounds_refuse_lower_above_upper():
    with pytest.raises(ValueError, match="lower .* must not be above upper"):
        IntervalJoinConfig(type="interval_join", left="a", right="b", on="k", lower="1m", upper="-1m")


def table_stage(how="left", ttl=None, time="processing"):  # event time: tests/unit/engine/test_temporal_join.py
    cfg = TableJoinConfig(type="table_join", stream="clicks", table="users", on="user", how=how, ttl=ttl, time=time)
    return TableJoinStage("enrich", cfg, CTX)


@pytest.mark.parametrize("how", ["inner", "left"])
def test_table_join_updates_and_deletes_equal_the_reference(how):
    rnd = random.Random(3)
    stage, t = table_stage(how), CommitTracker()
    feed = Feed(engine(stage, t, lateness=3_600_000), t)
    table: dict = {}
    out, expected = [], []
    for step in range(60):
        changes = []
        for _ in range(rnd.randrange(4)):
            u = f"u{rnd.randrange(8)}"
            if rnd.random() < 0.2:
                changes.append(Record(None, 0, key=u.encode()))  # a tombstone
                table.pop(u, None)
            else:
                row = {"user": u, "name": f"n{step}", "ts": BASE + step}
                changes.append(Record(row, 0))
                table[u] = row
        pk = ("users", 0)
        if pk not in feed.next:
            feed.e.assign(pk, 0)
            feed.next[pk] = 0
        for i, r in enumerate(changes):
            r.offset = feed.next[pk] + i
        feed.next[pk] += len(changes)
        assert feed.e.process(Batch("users", 0, changes, feed.next[pk], decoded=True), 0) == []
        clicks = [{"user": f"u{rnd.randrange(10)}", "ts": BASE + step, "n": step * 10 + i} for i in range(3)]
        feed.send("clicks", clicks)
        for c in clicks:
            if c["user"] in table:
                expected.append({**c, "left_ts": c["ts"], "right_ts": table[c["user"]]["ts"],
                                 "name": table[c["user"]]["name"]} | {"ts": None})
            elif how == "left":  # the same fields as an enriched row, the table's null
                expected.append({**c, "left_ts": c["ts"], "right_ts": None, "name": None})
    for em in feed.close(final=True):
        out += em.rows
    norm = lambda r: sorted((k, v) for k, v in r.items() if k != "ts")  # noqa: E731
    assert sorted(map(norm, out)) == sorted(map(norm, [{k: v for k, v in r.items() if v is not None or k != "ts"}
                                                       for r in expected]))
    assert stage.state_figures()[0] == len(table)


def test_table_ttl_forgets_entries_and_frees_the_commit():
    stage, t = table_stage("inner", ttl="1m"), CommitTracker()
    feed = Feed(engine(stage, t, lateness=0), t)
    feed.send("users", [{"user": "u1", "name": "a", "ts": BASE}, {"user": "u2", "name": "b", "ts": BASE + 50_000}])
    feed.close()
    assert t.safe(("users", 0)) == 0  # entries hold their offsets: no checkpoint covers them
    feed.send("clicks", [{"user": "u1", "ts": BASE + 61_000}])
    feed.close()
    assert stage.state_figures()[0] == 2  # the table's own partition holds the watermark back
    feed.send("users", [{"user": "u3", "name": "c", "ts": BASE + 61_000}])  # now it passes u1's ttl
    feed.close()
    assert stage.state_figures()[0] == 2  # u2 and u3 are kept; u1 is gone
    # ...but u1 enriched the click at 61s, whose window [1m, 2m) is not written: it still holds its offset
    # (rtstream.engine.pair_holds), or a restart would replay that click with no u1
    assert t.safe(("users", 0)) == 0
    feed.send("clicks", [{"user": "u1", "ts": BASE + 62_000}, {"user": "u2", "ts": BASE + 62_000}])
    rows = [r for em in feed.close(final=True) for r in em.rows]
    # the first click met u1 while it was kept; the second comes after its ttl, and inner drops it
    assert [(r["user"], r["ts"] - BASE, r.get("name")) for r in rows] == [("u1", 61_000, "a"), ("u2", 62_000, "b")]


def test_table_checkpoint_restores_and_stops_holding():
    stage, t = table_stage("left"), CommitTracker()
    e = engine(stage, t)
    feed = Feed(e, t)
    feed.send("users", [{"user": f"u{i}", "name": str(i), "ts": BASE} for i in range(5)])
    assert t.safe(("users", 0)) == 0
    pos, blob = e.snapshot(("users", 0))
    e.checkpoint_saved(("users", 0), pos, e.epoch_of(("users", 0)))
    assert t.safe(("users", 0)) == 5  # the checkpoint holds the table now
    # a new process restores it without reading the changelog again
    stage2, t2 = table_stage("left"), CommitTracker()
    e2 = engine(stage2, t2)
    e2.assign(("users", 0), 0)
    e2.restore(("users", 0), pos, blob, 0)
    assert stage2.state_figures()[0] == 5 and t2.safe(("users", 0)) == 5
    feed2 = Feed(e2, t2)
    feed2.send("clicks", [{"user": "u3", "ts": BASE}])
    [em] = feed2.close(final=True)
    assert em.rows[0]["name"] == "3"


def test_table_hold_follows_the_oldest_entry_still_kept():
    stage, t = table_stage("left"), CommitTracker()
    e = engine(stage, t)
    feed = Feed(e, t)
    feed.send("users", [{"user": "u1", "ts": BASE}, {"user": "u2", "ts": BASE}, {"user": "u1", "ts": BASE}])
    assert t.safe(("users", 0)) == 1  # u1's first value was replaced: u2's row is the oldest kept
    pk = ("users", 0)
    e.process(Batch("users", 0, [Record(b"null", 3, key=b"u2")], 4), 0)  # a tombstone, as bytes
    t.processed(pk, 4)
    assert t.safe(pk) == 2 and sorted(stage.stateful_step.values) == ["u1"]
    e.process(Batch("users", 0, [Record(None, 4, key=b"u1")], 5), 0)  # a Kafka tombstone
    t.processed(pk, 5)
    assert t.safe(pk) == 5 and stage.state_figures() == (0, 0, 0)


def test_a_window_one_sides_commit_says_was_written_is_not_written_again_from_the_other_side():
    """A kill between the two sources' commits: orders replay from an older commit, payments from one
    whose mark says the 00:00 window is written. The window holds both sides and was written whole, so
    the orders of it are not joined again on their own (they were: a left join rewrote it orders-only):
    orders take the mark saved for them before the round (rtstream.runtime.written_marks)."""
    from rtstream.model.positions import Mark

    stage, t = window_join("left"), CommitTracker()
    e = engine(stage, t, lateness=0)
    e.assign(("orders", 0), 0)
    e.assign(("payments", 0), 0)
    e.seed(("payments", 0), Mark(BASE + MIN, 2))  # payments' commit: windows ending by 00:01 written
    assert e.adopt_written(("orders", 0), Mark(BASE + MIN, 2))  # orders' journaled mark: their commit did not land
    feed = Feed(e, t)
    feed.next = {("orders", 0): 0, ("payments", 0): 2}
    assert feed.send("orders", [{"id": "a", "ts": BASE + 5}, {"id": "b", "ts": BASE + MIN + 5}]) == []
    assert feed.send("payments", [{"id": "b", "ts": BASE + MIN + 9}]) == []
    feed.send("orders", [{"id": "z", "ts": BASE + 3 * MIN}])
    feed.send("payments", [{"id": "z", "ts": BASE + 3 * MIN}])
    ems = feed.close()
    assert [em.window.start_ms - BASE for em in ems] == [MIN]  # 00:00 is not written again
    rows = asyncio.run(stage.run(ems[0].window, ems[0].rows))
    assert [(r["id"], r.get("right_ts")) for r in rows] == [("b", BASE + MIN + 9)]
    assert e.replayed_done == 1


@pytest.mark.parametrize("payments_first", [False, True])
def test_a_checkpoint_older_than_the_other_sides_commit_does_not_bring_a_written_window_back(payments_first):
    from rtstream.model.positions import Mark

    stage, t = window_join("inner"), CommitTracker()
    e = engine(stage, t, lateness=0)
    feed = Feed(e, t)
    feed.send("orders", [{"id": "a", "ts": BASE + 5}])
    feed.send("payments", [{"id": "a", "ts": BASE + 7}])
    pos, blob = e.snapshot(("orders", 0))  # 00:00 is open in the checkpoint; it is written later
    stage2, t2 = window_join("inner"), CommitTracker()
    e2 = engine(stage2, t2, lateness=0)
    # orders' checkpoint is older than the mark saved for them before the round whose commit was cut
    steps = [lambda: (e2.assign(("orders", 0), 0), e2.restore(("orders", 0), pos, blob, 0),
                      e2.adopt_written(("orders", 0), Mark(BASE + MIN, 1))),
             # payments' commit landed after 00:00 was written
             lambda: (e2.assign(("payments", 0), 0), e2.seed(("payments", 0), Mark(BASE + MIN, 1)))]
    for step in (steps[::-1] if payments_first else steps):
        step()
    assert t2.safe(("orders", 0)) == 1  # the restored pane was dropped: it holds nothing
    feed2 = Feed(e2, t2)
    feed2.next = {("orders", 0): 1, ("payments", 0): 1}
    feed2.send("orders", [{"id": "z", "ts": BASE + 3 * MIN}])
    feed2.send("payments", [{"id": "z", "ts": BASE + 3 * MIN}])
    assert feed2.close() == []  # before: 00:00 written again with the order alone (no pair: empty)
    assert e2.records_in == 2


def test_a_partition_that_comes_later_keeps_its_own_mark():
    """Once records are folded, another side's mark never drops a window this process holds open."""
    from rtstream.model.positions import Mark

    stage, t = window_join("left"), CommitTracker()
    e = engine(stage, t, lateness=0)
    feed = Feed(e, t)
    feed.send("orders", [{"id": "a", "ts": BASE + 5}])
    e.assign(("payments", 0), 0, epoch=1)
    e.seed(("payments", 0), Mark(BASE + MIN, 1))  # a rebalance hands over a partition written elsewhere
    feed.next[("payments", 0)] = 1
    feed.send("payments", [{"id": "z", "ts": BASE + 3 * MIN}])
    feed.send("orders", [{"id": "z", "ts": BASE + 3 * MIN}])
    [em] = feed.close()
    assert em.window.start_ms == BASE and [r["id"] for r in asyncio.run(stage.run(em.window, em.rows))] == ["a"]
