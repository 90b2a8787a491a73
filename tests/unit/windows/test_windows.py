"""Tumbling and hopping windows against an independent reference, on randomised input."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtstream.config.load import load_settings
from rtstream.engine.commit_rule import CommitTracker
from rtstream.engine.window_engine import WindowEngine
from rtstream.model.batch import Batch
from rtstream.model.errors import ConfigError
from rtstream.model.record import Record
from rtstream.stages.aggregate import AggregateConfig, build_aggregator
from rtstream.windows.aggregates import Aggregator, parse_aggregate

BASE = 1_767_225_600_000
MIN = 60_000


def run_engine(records, size, hop=None, lateness=0, batch=7, emit_empty=False, aggregator=None):
    agg = aggregator or Aggregator("k", [parse_aggregate("n", "count()"), parse_aggregate("s", "sum(v)")])
    e = WindowEngine(size_ms=size, lateness_ms=lateness, idle_timeout_s=3600, time_mode="event", time_field="ts",
                     record_stages=[], aggregator=agg, tracker=CommitTracker(), max_window_records=10,
                     hop_ms=hop, emit_empty=emit_empty)
    e.assign(("s", 0), 0)
    out, dead = [], []
    for i in range(0, len(records), batch):
        recs = [Record(r, i + j) for j, r in enumerate(records[i:i + batch])]
        dead += e.process(Batch("s", 0, recs, i + len(recs), decoded=True), 0)
        out += e.close_ready(0, 0)
    out += e.close_all()
    rows = {(em.window.start_ms, r.get("k")): (r["n"], r["s"]) for em in out for r in em.rows}
    return rows, dead, out


def reference(records, size, hop):
    out: dict = defaultdict(lambda: [0, 0])
    for r in records:
        last = r["ts"] - r["ts"] % hop
        for k in range(size // hop):
            acc = out[(last - k * hop, r["k"])]
            acc[0] += 1
            acc[1] += r["v"]
    return {key: tuple(v) for key, v in out.items()}


events = st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 30 * MIN), st.integers(-50, 50)), max_size=80)


@settings(max_examples=150, deadline=None)
@given(events, st.sampled_from([(5 * MIN, 5 * MIN), (10 * MIN, 5 * MIN), (6 * MIN, 2 * MIN)]), st.randoms())
def test_any_order_within_lateness_gives_the_reference(items, shape, rnd):
    size, hop = shape
    records = sorted(({"k": k, "ts": BASE + t, "v": v} for k, t, v in items), key=lambda r: r["ts"])
    # shuffle within a bound, and allow exactly that much lateness
    bound = 2 * MIN
    shuffled = sorted(records, key=lambda r: r["ts"] + rnd.uniform(0, bound))
    got, dead, _ = run_engine(shuffled, size, hop, lateness=bound)
    assert dead == []
    assert got == reference(records, size, hop)


def test_hopping_record_joins_size_over_hop_windows():
    rows, _, out = run_engine([{"k": "a", "ts": BASE + 7 * MIN, "v": 1}], 15 * MIN, 5 * MIN)
    assert sorted(s - BASE for s, _ in rows) == [-5 * MIN, 0, 5 * MIN]
    assert all(em.window.end_ms - em.window.start_ms == 15 * MIN for em in out)


def test_late_only_when_late_for_every_window():
    records = [{"k": "a", "ts": BASE, "v": 1}, {"k": "a", "ts": BASE + 11 * MIN, "v": 1},
               {"k": "a", "ts": BASE + 4 * MIN, "v": 1}]  # closed for [0,10) but open in [5,15)? no: 4 < 5
    _, dead, _ = run_engine(records, 10 * MIN, 5 * MIN, batch=1)
    assert [d.reason for d in dead] == ["late"]
    records[2]["ts"] = BASE + 6 * MIN  # in [0,10) (closed) and [5,15) (open): joins the open one
    rows, dead, _ = run_engine(records, 10 * MIN, 5 * MIN, batch=1)
    assert dead == [] and rows[(BASE + 5 * MIN, "a")] == (2, 2)


def test_emit_empty_runs_every_window_of_the_schedule():
    agg = Aggregator(None, [parse_aggregate("n", "count()"), parse_aggregate("s", "sum(v)")])
    records = [{"ts": BASE + MIN, "v": 2}, {"ts": BASE + 16 * MIN, "v": 3}, {"ts": BASE + 31 * MIN, "v": 1}]
    _, _, out = run_engine(records, 5 * MIN, emit_empty=True, aggregator=agg, batch=1)
    got = [((em.window.start_ms - BASE) // MIN, [(r["n"], r["s"]) for r in em.rows]) for em in out]
    assert got == [(0, [(1, 2)]), (5, [(0, 0)]), (10, [(0, 0)]), (15, [(1, 3)]), (20, [(0, 0)]), (25, [(0, 0)]),
                   (30, [(1, 1)])]


def test_user_defined_aggregator():
    cfg = AggregateConfig.model_validate({"type": "aggregate", "key": "k",
                                          "aggregates": {"n": "count()", "spread": "tests.unit.userfns:Spread()"}})
    agg = build_aggregator(cfg, [])
    table: dict = {}
    for v in (5, 1, 9):
        assert agg.update(table, {"k": "a", "amount": v}, 0) is None
    assert "aggregate 'spread' raised KeyError" in agg.update(table, {"k": "a"}, 0)
    other: dict = {}
    agg.update(other, {"k": "a", "amount": 20}, 0)
    agg.merge_into(table, other)
    assert agg.rows(table, "S", "E") == [{"window_start": "S", "window_end": "E", "k": "a", "n": 4, "spread": 19}]


def doc(**window):
    return {"pipeline": {"flow": "g >> a >> o"}, "window": {"size": "10m", **window},
            "sources": {"g": {"type": "generator", "count": 1}},
            "stages": {"a": {"type": "aggregate", "aggregates": {"n": "count()"}}},
            "sinks": {"o": {"type": "stdout"}}}


def test_window_config():
    assert load_settings(doc=doc(type="hopping", hop="5m"), env={}).root.window.hop_ms == 5 * MIN
    for bad, msg in [(dict(type="hopping"), "needs a hop"), (dict(type="hopping", hop="3m"), "multiple of hop"),
                     (dict(hop="5m"), 'hop is for type = "hopping"')]:
        with pytest.raises(ConfigError, match=msg):
            load_settings(doc=doc(**bad), env={})
    d = doc()
    d["stages"]["a"]["aggregates"] = {"x": "tests.unit.userfns:NotAnAggregator()"}
    with pytest.raises(ConfigError, match="stages.a.aggregates: NotAnAggregator has no zero"):
        load_settings(doc=d, env={})


def updating_engine():
    """Five-minute windows counting by k, running results every second."""
    e = WindowEngine(size_ms=5 * MIN, lateness_ms=0, idle_timeout_s=3600, time_mode="event", time_field="ts",
                     record_stages=[], aggregator=Aggregator("k", [parse_aggregate("n", "count()")]),
                     tracker=CommitTracker(), max_window_records=10, update_interval_s=1.0)
    e.assign(("s", 0), 0)
    return e


def test_emit_updates_sends_running_rows_of_changed_windows_then_the_final_row():
    e = updating_engine()

    def step(offset, ts, now):
        e.process(Batch("s", 0, [Record({"k": "a", "ts": BASE + ts}, offset)], offset + 1, decoded=True), now)
        return [(em.window.final, em.tag_final, em.partitions, [r["n"] for r in em.rows]) for em in e.close_ready(now, 0)]

    assert step(0, 0, now=1.0) == [(False, True, [], [1])]
    assert step(1, MIN, now=1.5) == []  # not yet time for the next running result
    assert step(2, 2 * MIN, now=2.5) == [(False, True, [], [3])]
    assert step(3, 2 * MIN, now=2.6) == []
    # the window closes: its final row, and a running row for the new window
    assert step(4, 6 * MIN, now=4.0) == [(True, True, [(("s", 0), 0)], [4]), (False, True, [], [1])]
    assert step(5, 7 * MIN, now=4.1) == []
    assert e.ledger.inflight == 4  # three running results and one final row wait for the sinks


def test_emit_updates_is_refused_for_sessions():
    d = doc(type="session", gap="5m", emit="updates")
    del d["window"]["size"]
    with pytest.raises(ConfigError, match='emit = "updates" is for tumbling and hopping'):
        load_settings(doc=d, env={})


def test_emit_updates_tags_the_rows_of_a_finite_runs_last_windows_final():
    e = updating_engine()
    e.process(Batch("s", 0, [Record({"k": "a", "ts": BASE}, 0)], 1, decoded=True), 0)
    assert [(em.window.final, em.tag_final) for em in e.close_all()] == [(True, True)]
