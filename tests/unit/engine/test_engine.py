"""The window engine alone: batches in, emissions out, commits held back until written."""

import pytest

from rtstream.engine.commit_rule import CommitTracker
from rtstream.engine.window_engine import WindowEngine
from rtstream.model.batch import Batch
from rtstream.model.record import Record
from rtstream.windows.aggregates import AggregateSpec, Aggregator, parse_aggregate, user_function

MIN = 60_000
BASE = 1_767_225_600_000  # event times in epoch ms, as the engine reads them


def engine(tracker=None, lateness=0):
    agg = Aggregator("k", [parse_aggregate("n", "count()")])
    return WindowEngine(size_ms=MIN, lateness_ms=lateness, idle_timeout_s=3600, time_mode="event", time_field="ts",
                        record_stages=[], aggregator=agg, tracker=tracker or CommitTracker(), max_window_records=10)


def batch(p, items, first_offset=0, epoch=0):
    recs = [Record({"k": k, "ts": BASE + ts}, first_offset + i) for i, (k, ts) in enumerate(items)]
    return Batch("s", p, recs, first_offset + len(recs), decoded=True, epoch=epoch)


def test_windows_close_by_watermark_and_merge_partitions():
    t = CommitTracker()
    e = engine(t)
    e.assign(("s", 0), 0)
    e.assign(("s", 1), 0)
    e.process(batch(0, [("a", 1000), ("b", 2000), ("a", MIN + 5)]), now=0)
    e.process(batch(1, [("a", 3000)]), now=0)
    t.processed(("s", 0), 3)
    t.processed(("s", 1), 1)
    assert e.close_ready(0, 0) == []  # partition 1 has not passed the first window
    e.process(batch(1, [("b", MIN + 10)], first_offset=1), now=0)
    t.processed(("s", 1), 2)
    [em] = e.close_ready(0, 0)
    assert [(r["k"], r["n"]) for r in em.rows] == [("a", 2), ("b", 1)]
    assert t.safe(("s", 0)) == 0  # written? not yet: the emission holds the commit
    e.emitted(em)
    assert t.safe(("s", 0)) == 2 and t.safe(("s", 1)) == 1  # now only the open second window holds


def test_late_record_dead_lettered_with_its_window():
    e = engine()
    e.assign(("s", 0), 0)
    e.process(batch(0, [("a", 1000), ("a", 2 * MIN + 1)]), 0)
    assert len(e.close_ready(0, 0)) == 1  # the first window; the third is still open
    [dead] = e.process(batch(0, [("a", 1500)], first_offset=2), 0)
    assert (dead.reason, dead.window, dead.offset) == ("late", (BASE, BASE + MIN), 2)


def test_partition_taken_over_in_a_rebalance_replays_without_being_late():
    e = engine()
    e.assign(("s", 0), 0)
    e.process(batch(0, [("a", 10 * MIN)]), 0)
    e.close_ready(0, 0)
    e.assign(("s", 1), 0, epoch=1)  # joins with older data
    assert e.process(batch(1, [("b", 1000), ("b", 2000)], epoch=1), 0) == []
    assert e.close_ready(0, 0) == []  # its own mark has not passed its first window yet
    e.process(batch(1, [("b", 3000), ("b", MIN + 1)], first_offset=2, epoch=1), 0)
    [em] = e.close_ready(0, 0)
    assert [(r["k"], r["n"]) for r in em.rows] == [("b", 3)]  # the whole window, not a piece


def test_revoked_partition_batches_are_dropped():
    e = engine()
    e.assign(("s", 0), 0, epoch=1)
    assert e.owns(batch(0, [], epoch=1))
    e.revoke(("s", 0))
    assert not e.owns(batch(0, [], epoch=1))


def test_buffered_windows_are_bounded():
    e = WindowEngine(size_ms=MIN, lateness_ms=0, idle_timeout_s=3600, time_mode="event", time_field="ts",
                     record_stages=[], aggregator=None, tracker=CommitTracker(), max_window_records=3)
    e.assign(("s", 0), 0)
    dead = e.process(batch(0, [("a", i) for i in range(5)]), 0)
    assert [d.reason for d in dead] == ["window_full", "window_full"]
    [em] = e.close_all()
    assert len(em.rows) == 3


def test_replay_from_a_commit_skips_records_of_windows_already_written():
    # offsets 0..3: the fourth record belongs to the first window but comes after the second began
    items = [("a", 1000), ("a", MIN + 1), ("a", 2000), ("a", MIN + 30_000)]
    t = CommitTracker()
    e = engine(t)
    e.assign(("s", 0), 0)
    e.process(batch(0, items), 0)
    t.processed(("s", 0), 4)
    [first] = e.close_ready(0, 0)
    assert [(r["k"], r["n"]) for r in first.rows] == [("a", 2)]
    e.emitted(first)
    commit, mark = t.safe(("s", 0)), e.ledger.mark(("s", 0))
    assert commit == 1 and mark == (BASE + MIN + 30_000, 4)  # resume at offset 1; the first window is written

    # a restart: a fresh engine resumes from the commit with its mark, and reads offsets 1..3 again
    t2 = CommitTracker()
    e2 = engine(t2)
    e2.assign(("s", 0), 0)
    e2.seed(("s", 0), mark)
    assert e2.process(batch(0, items[1:], first_offset=1), 0) == []  # offset 2 is skipped, not late
    assert e2.replayed_done == 1
    assert e2.close_ready(0, 0) == []  # the first window is not emitted again, the second is still open
    [second] = e2.close_all()
    assert second.window.start_ms == BASE + MIN and [r["n"] for r in second.rows] == [2]
    late = e2.process(batch(0, [("a", 3000)], first_offset=4), 0)  # new input for a written window
    assert [d.reason for d in late] == ["late"]


def test_commit_after_a_window_is_what_committing_would_give_once_it_is_written():
    t = CommitTracker()
    e = engine(t)
    e.assign(("s", 0), 0)
    e.assign(("s", 1), 0)
    e.process(batch(0, [("a", 1000), ("a", MIN + 5)]), now=0)
    e.process(batch(1, [("b", 2000), ("b", 2 * MIN + 5)]), now=0)
    t.processed(("s", 0), 2)
    t.processed(("s", 1), 2)
    [em] = e.close_ready(0, 0)
    positions, marks = e.ledger.after(em.window, e.owned())
    assert positions == {("s", 0): 1, ("s", 1): 1}  # the second window's records stay uncommitted
    assert marks == {("s", 0): (BASE + MIN + 5, 2), ("s", 1): (BASE + MIN + 5, 2)}  # the watermark it closed at
    assert t.safe(("s", 0)) == 0  # nothing is released until the sinks have it
    e.emitted(em)
    assert {pk: t.safe(pk) for pk in positions} == positions
    assert {pk: e.ledger.mark(pk) for pk in marks} == marks


def test_a_written_window_holds_the_commit_until_every_window_of_its_close_is_written():
    # Found by the session crash test: a commit taken after the first window of a close was written,
    # but before the last, passed the first window's records with the previous close's mark, so a
    # replay from it emitted the window again from its stragglers alone.
    t = CommitTracker()
    e = engine(t)
    pk = ("s", 0)
    e.assign(pk, 0)
    e.process(batch(0, [("a", 1000), ("b", MIN + 1000), ("a", 2000), ("c", 2 * MIN + 5)]), now=0)
    t.processed(pk, 4)
    first, second = e.close_ready(0, 0)
    e.emitted(first)
    assert t.safe(pk) == 0  # not 1: window 0's straggler at offset 2 would be replayed under an old mark
    assert e.ledger.after(first.window, e.owned()) == ({}, {})  # nor may a transaction commit anything with it
    positions, marks = e.ledger.after(second.window, e.owned())
    e.emitted(second)
    assert t.safe(pk) == 3 == positions[pk] and e.ledger.mark(pk) == marks[pk] == (BASE + 2 * MIN + 5, 4)
    again = engine()
    again.assign(pk, 0)
    again.seed(pk, e.ledger.mark(pk))
    again.process(batch(0, [("c", 2 * MIN + 5)], first_offset=3), now=0)
    assert [em.window.start_ms for em in again.close_all()] == [BASE + 2 * MIN]  # nothing written is sent again


def test_a_finite_runs_last_windows_release_every_hold_once_written():
    t = CommitTracker()
    e = engine(t)
    pk = ("s", 0)
    e.assign(pk, 0)
    e.process(batch(0, [("a", 1000), ("b", MIN + 1000)]), now=0)
    t.processed(pk, 2)
    for em in e.close_all():
        e.emitted(em)
    assert t.safe(pk) == 2


def test_a_record_that_raises_anywhere_in_the_fold_is_dead_lettered_and_the_batch_goes_on():
    class Unhashable:  # what a python source could hand over as a key: the fold itself raises on it
        __hash__ = None  # type: ignore[assignment]

    e = engine()
    e.assign(("s", 0), 0)
    recs = [Record({"k": "a", "ts": BASE}, 0), Record({"k": Unhashable(), "ts": BASE + 1}, 1),
            Record({"k": "a", "ts": BASE + 2}, 2)]
    dead = e.process(Batch("s", 0, recs, 3, decoded=True), now=0)
    assert [(d.reason, d.offset) for d in dead] == [("error", 1)]
    assert "TypeError" in dead[0].detail
    [em] = e.close_all()
    assert [(r["k"], r["n"]) for r in em.rows] == [("a", 2)]


class _TallyInPlace:
    """A user aggregator that changes its accumulator in place (a common way to write one)."""

    def zero(self):
        return {}

    def add(self, acc, record):
        acc[record["kind"]] = acc.get(record["kind"], 0) + 1
        return acc

    def merge(self, a, b):
        return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}

    def result(self, acc):
        return acc


class _NeedsX:
    """A user aggregator that raises on records without a numeric x (after _TallyInPlace ran)."""

    def zero(self):
        return 0.0

    def add(self, acc, record):
        return acc + float(record["x"])

    def merge(self, a, b):
        return a + b

    def result(self, acc):
        return acc


@pytest.mark.parametrize("user_aggregates", [False, True])
def test_short_path_of_the_fold_agrees_with_the_general_path_on_random_input(user_aggregates):
    """W1's shape (epoch-ms event time, tumbling, aggregated) folds most records on a short path;
    a time_range that keeps everything sends every record down the general path. Both must give the
    same rows, dead letters and commit positions, batch by batch, on input with late records, new
    windows, overflowing sums, odd time formats, non-objects and bad JSON."""
    import random

    import orjson

    seed = random.randrange(1 << 30)
    rnd = random.Random(seed)

    def one_engine(general: bool):
        t = CommitTracker()
        specs = [parse_aggregate("n", "count()"), parse_aggregate("s", "sum(x)")]
        if user_aggregates:  # each add asked once per record and window on both paths
            specs += [AggregateSpec("kinds", "tests:_TallyInPlace", None, user_function(_TallyInPlace)),
                      AggregateSpec("xs", "tests:_NeedsX", None, user_function(_NeedsX))]
        agg = Aggregator("k", specs)
        e = WindowEngine(size_ms=MIN, lateness_ms=5_000, idle_timeout_s=3600, time_mode="event", time_field="ts",
                         record_stages=[], aggregator=agg, tracker=t, max_window_records=10)
        if general:
            e.time_range = (0, 1 << 62)
        e.assign(("s", 0), 0)
        return e, t

    def raw(i: int) -> bytes:
        ts = BASE + i * 400 + rnd.randint(-8_000, 2_000)
        doc = {"k": f"k{rnd.randrange(5)}", "ts": ts, "x": rnd.choice([1, 2.5, 1e308, "a", None]),
               "kind": rnd.choice("abc")}
        odd = rnd.random()
        if odd < 0.03:
            doc["ts"] = "2026-01-01T00:00:30Z"
        elif odd < 0.05:
            doc.pop("ts")
        elif odd < 0.06:
            return b"[1, 2]"
        elif odd < 0.07:
            return b"{bad"
        elif odd < 0.085:
            doc["ts"] = ts // 1000  # epoch seconds
        elif odd < 0.09:
            return orjson.dumps(doc).replace(b'"k":"', b'"k":123456789012345678901234567890,"was":"')
        return orjson.dumps(doc)

    runs = [one_engine(False), one_engine(True)]
    offset = 0
    outputs: list[list] = [[], []]
    for _ in range(40):
        raws = [raw(offset + j) for j in range(rnd.randrange(1, 60))]
        for (e, t), out in zip(runs, outputs, strict=True):
            recs = [Record(r, offset + j) for j, r in enumerate(raws)]
            dead = e.process(Batch("s", 0, recs, offset + len(recs)), now=0)
            t.processed(("s", 0), offset + len(recs))
            out.append(sorted((d.reason, d.offset, d.window) for d in dead))
            for em in e.close_ready(0, 0):
                out.append((em.window.start_ms, sorted(repr(sorted(r.items())) for r in em.rows)))
                e.emitted(em)
            out.append(t.safe(("s", 0)))
        offset += len(raws)
    assert outputs[0] == outputs[1], f"seed {seed}"
