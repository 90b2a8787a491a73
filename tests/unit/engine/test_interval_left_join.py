"""interval_join how = "left" in the window engine, against a plain reference over the same input:
every pair once, and each left row that found no right row in [ts + lower, ts + upper] once, alone, in
its own window, once the watermark passed ts + upper; never a matched row alone. Out-of-order input
within lateness, and a crash mid-state restored from the partitions' checkpoints."""

import random

import pytest

from rtstream.engine.commit_rule import CommitTracker
from rtstream.model.batch import Batch
from rtstream.model.record import Record
from rtstream.stages.join import IntervalJoinConfig, IntervalJoinStage
from tests.unit.engine.test_joins import BASE, CTX, MIN, engine, shuffled_within

LATENESS = 5_000


def left_stage(lower="-10s", upper="20s"):
    cfg = IntervalJoinConfig(type="interval_join", left="a", right="b", on="k", lower=lower, upper=upper, how="left")
    return IntervalJoinStage("ij", cfg, CTX)


def data(seed, n=200, keys=8):
    rnd = random.Random(seed)
    a_rows = [{"k": rnd.randrange(keys), "ts": BASE + rnd.randrange(5 * MIN), "a": i} for i in range(n)]
    b_rows = [{"k": rnd.randrange(keys), "ts": BASE + rnd.randrange(5 * MIN), "b": i} for i in range(n)]
    return rnd, a_rows, b_rows


def reference(a_rows, b_rows, lower, upper):
    """(a, b) for each pair, (a, None) for each left row with no partner."""
    out = []
    for x in a_rows:
        found = [y for y in b_rows if x["k"] == y["k"] and x["ts"] + lower <= y["ts"] <= x["ts"] + upper]
        out += [(x["a"], y["b"]) for y in found] or [(x["a"], None)]
    return sorted(out, key=repr)


class Stream:
    """Both sources' arrivals (out of order within lateness), by offset, fed in small batches."""

    def __init__(self, rnd, a_rows, b_rows):
        self.input = {"a": shuffled_within(a_rows, LATENESS - 1_000, rnd),
                      "b": shuffled_within(b_rows, LATENESS - 1_000, rnd)}
        self.steps = [(src, i) for i in range(0, len(self.input["a"]), 10) for src in ("a", "b")]

    def run(self, e, t, steps, sink, start=None):
        """Feed `steps` (source, first offset) to engine `e`; what it writes goes to `sink` (window -> rows)."""
        for src, first in steps:
            pk = (src, 0)
            values = self.input[src][max(first, (start or {}).get(src, 0)):first + 10]
            first = max(first, (start or {}).get(src, 0))
            if not values:
                continue
            end = first + len(values)
            assert e.process(Batch(src, 0, [Record(v, first + j) for j, v in enumerate(values)], end, decoded=True),
                             now=0) == []
            t.processed(pk, end)
            write(e, e.close_ready(0, 0), sink)


def write(e, emissions, sink):
    for em in emissions:  # a sink that replaces a window's rows whole: a replay writes the same window again
        sink[(em.window.start_ms, em.window.end_ms)] = list(em.rows)
        e.emitted(em)


def got(sink):
    out = []
    for (start, end), rows in sink.items():
        for r in rows:
            if "b" in r:
                out.append((r["a"], r["b"]))
            else:
                assert set(r) == {"k", "ts", "a"}, r  # alone: its own fields only (a sink writes b's as null)
                assert start <= r["ts"] < end  # in its own time's window
                out.append((r["a"], None))
    return sorted(out, key=repr)


def fresh(lower="-10s", upper="20s"):
    stage, t = left_stage(lower, upper), CommitTracker()
    e = engine(stage, t, lateness=LATENESS, size=MIN)
    for src in ("a", "b"):
        e.assign((src, 0), 0)
    return stage, t, e


@pytest.mark.parametrize(("lower", "upper"), [("-10s", "20s"), ("0s", "1m"), ("-30s", "-5s")])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_left_interval_join_out_of_order_equals_the_reference(seed, lower, upper):
    rnd, a_rows, b_rows = data(seed)
    stream = Stream(rnd, a_rows, b_rows)
    stage, t, e = fresh(lower, upper)
    sink: dict = {}
    stream.run(e, t, stream.steps, sink)
    write(e, e.close_all(), sink)
    lo, hi = stage.config.lower * 1000, stage.config.upper * 1000
    want = reference(a_rows, b_rows, lo, hi)
    assert got(sink) == want
    assert sum(1 for _, b in want if b is None) >= 3 and sum(1 for _, b in want if b is not None) > 50


def test_a_lone_left_row_goes_out_once_the_watermark_passes_ts_plus_upper():
    stage, t, e = fresh("0s", "20s")
    sink: dict = {}
    e.process(Batch("a", 0, [Record({"k": 1, "ts": BASE + 1_000, "a": 0}, 0)], 1, decoded=True), now=0)
    t.processed(("a", 0), 1)
    open_records = lambda: sum(p.count for panes in e.store.snapshot().values() for _, p in panes)  # noqa: E731

    def advance(ts, offset):
        for src in ("a", "b"):
            e.process(Batch(src, 0, [Record({"k": 9, "ts": ts, src: 100 + offset}, offset)], offset + 1, decoded=True),
                      now=0)
            t.processed((src, 0), offset + 1)
        write(e, e.close_ready(0, 0), sink)

    advance(BASE + 1_000 + 20_000 + LATENESS, 1)  # the watermark reaches ts + upper: not passed yet
    assert stage.state_figures()[0] >= 1 and not any("a" in r and r["a"] == 0 for rows in sink.values() for r in rows)
    before = open_records()
    assert t.safe(("a", 0)) == 0  # the waiting row holds its partition's commit
    advance(BASE + 1_000 + 20_000 + LATENESS + 1, 2)  # passed: let go alone, into its own (still open) window
    assert open_records() == before + 1 + 2  # the row and the two new records
    assert t.safe(("a", 0)) == 0  # now its window holds the commit at its offset until written
    advance(BASE + MIN + 20_000 + LATENESS, 3)  # the first minute's window closes (upper later than usual)
    [rows] = [rows for (start, _), rows in sink.items() if start == BASE]
    lone = {"k": 1, "left_ts": BASE + 1_000, "a": 0, "right_ts": None, "b": None, "ts": BASE + 1_000}
    assert [r for r in rows if r.get("a") == 0] == [lone]  # once, alone, in the join's row shape
    assert t.safe(("a", 0)) == 0  # written, but no checkpoint yet: whether rows matched is known from state only
    pos, _ = e.snapshot(("a", 0))
    e.checkpoint_saved(("a", 0), pos, e.epoch_of(("a", 0)))
    assert pos == 4 and t.safe(("a", 0)) == 4  # the checkpoint holds the rest: the commit reaches it, not past


def test_a_matched_left_row_never_goes_out_alone_and_a_late_partner_within_lateness_still_matches():
    stage, t, e = fresh("0s", "20s")
    sink: dict = {}
    e.process(Batch("a", 0, [Record({"k": 1, "ts": BASE + 1_000, "a": 0}, 0)], 1, decoded=True), now=0)
    # b's clock is ahead, its partner arrives after, out of order but within lateness
    e.process(Batch("b", 0, [Record({"k": 2, "ts": BASE + 24_000, "b": 9}, 0),
                             Record({"k": 1, "ts": BASE + 20_000, "b": 1}, 1)], 2, decoded=True), now=0)
    write(e, e.close_ready(0, 0), sink)
    write(e, e.close_all(), sink)
    rows = [r for rs in sink.values() for r in rs]
    assert [(r["a"], r["b"]) for r in rows if "a" in r and "b" in r] == [(0, 1)]
    assert [r for r in rows if "a" in r and "b" not in r] == []


@pytest.mark.parametrize("seed", range(6))
def test_a_crash_mid_state_restored_from_checkpoints_equals_the_reference(seed):
    rnd, a_rows, b_rows = data(100 + seed)
    stream = Stream(rnd, a_rows, b_rows)
    stage, t, e = fresh()
    sink: dict = {}
    cut = rnd.randrange(8, len(stream.steps) - 8)
    stream.run(e, t, stream.steps[:cut], sink)
    saved = {src: e.snapshot((src, 0)) for src in ("a", "b")}  # a checkpoint of both partitions, mid-state
    assert stage.state_figures()[0] > 0
    lost = rnd.randrange(1, 6)  # the process goes on a little, writes some windows, then is killed
    stream.run(e, t, stream.steps[cut:cut + lost], sink)
    stage2, t2, e2 = fresh()
    start = {}
    for src, (pos, blob) in saved.items():
        e2.restore((src, 0), pos, blob, 0)
        start[src] = pos
    write(e2, e2.take_restored(), sink)
    replay = [(src, first) for src, first in stream.steps if first + 10 > start[src]]
    stream.run(e2, t2, replay, sink, start=start)
    write(e2, e2.close_all(), sink)
    assert got(sink) == reference(a_rows, b_rows, -10_000, 20_000)


class RefusesLoneRows:
    """A per-record stage after the join that raises on a row with no right side."""

    name = "after"
    per_record = True

    def apply(self, v):
        if v.get("b") is None:
            raise ValueError("no payment")
        return [v]


def test_a_lone_row_a_later_stage_refuses_is_dead_lettered_and_holds_its_offset_until_written():
    from rtstream.engine.window_engine import WindowEngine

    stage, t = left_stage("0s", "20s"), CommitTracker()
    e = WindowEngine(size_ms=MIN, lateness_ms=0, idle_timeout_s=3600, time_mode="event", time_field="ts",
                     record_stages=[stage, RefusesLoneRows()], aggregator=None, tracker=t, max_window_records=1000)
    for src in ("a", "b"):
        e.assign((src, 0), 0)
    e.process(Batch("a", 0, [Record({"k": 1, "ts": BASE, "a": 0}, 0)], 1, decoded=True), now=0)
    t.processed(("a", 0), 1)
    pos, _ = e.snapshot(("a", 0))
    e.checkpoint_saved(("a", 0), pos, e.epoch_of(("a", 0)))
    e.process(Batch("a", 0, [Record({"k": 2, "ts": BASE + 30_000, "a": 1}, 1)], 2, decoded=True), now=0)
    t.processed(("a", 0), 2)
    e.process(Batch("b", 0, [Record({"k": 3, "ts": BASE + 30_000, "b": 0}, 0)], 1, decoded=True), now=0)
    e.close_ready(0, 0)  # the watermark passed BASE + 20s: row 0 is let go alone, and refused after the join
    [letter] = e.take_dead()  # the one way every step's released rows are refused (rtstream.engine.released)
    lone = {"k": 1, "left_ts": BASE, "a": 0, "right_ts": None, "b": None, "ts": BASE}
    assert (letter.reason, letter.stage, letter.offset, letter.value) == ("stage_error", "after", 0, lone)
    assert "no payment" in letter.detail
    assert t.safe(("a", 0)) == 0  # held until the letter is written
    e.dead_written([letter])
    assert e.take_dead() == [] and t.safe(("a", 0)) == 1


def test_a_left_row_with_a_null_key_goes_out_alone_and_never_meets_a_null_right_key():
    """SQL: NULL equals nothing (rtstream.engine.join_keys); a left join still gives the left row."""
    stage, t, e = fresh("0s", "20s")
    sink: dict = {}
    e.process(Batch("a", 0, [Record({"k": None, "ts": BASE + 1_000, "a": 0}, 0)], 1, decoded=True), now=0)
    e.process(Batch("b", 0, [Record({"k": None, "ts": BASE + 2_000, "b": 0}, 0)], 1, decoded=True), now=0)
    for offset, ts in enumerate((BASE + 30_000 + LATENESS, BASE + MIN + 20_000 + LATENESS), start=1):
        for src in ("a", "b"):  # the watermark moves on: past ts + upper, then past the first window's close
            e.process(Batch(src, 0, [Record({"k": 9, "ts": ts, src: 100 + offset}, offset)], offset + 1,
                            decoded=True), now=0)
        write(e, e.close_ready(0, 0), sink)
    [rows] = [rows for (start, _), rows in sink.items() if start == BASE]
    assert [r for r in rows if r.get("a") == 0 or r.get("b") == 0] == [
        {"k": None, "left_ts": BASE + 1_000, "a": 0, "right_ts": None, "b": None, "ts": BASE + 1_000}]
