"""Session windows against an independent reference, on randomised input and across partitions."""

from __future__ import annotations

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
from tests.reference import session_truth

BASE = 1_767_225_600_000
MIN = 60_000
GAP = 5 * MIN


def engine(gap=GAP, lateness=0, key="k", partitions=(0,)):
    agg = Aggregator(key, [parse_aggregate("n", "count()"), parse_aggregate("s", "sum(v)")])
    e = WindowEngine(size_ms=gap, lateness_ms=lateness, idle_timeout_s=3600, time_mode="event", time_field="ts",
                     record_stages=[], aggregator=agg, tracker=CommitTracker(), max_window_records=10,
                     session_gap_ms=gap)
    for p in partitions:
        e.assign(("s", p), 0)
    return e


def feed(e, by_partition, batch=5):
    """Interleave the partitions' records batch by batch; returns every emission and dead letter."""
    out, dead = [], []
    offsets = {p: 0 for p in by_partition}
    pending = {p: list(recs) for p, recs in by_partition.items()}
    while any(pending.values()):
        for p, recs in pending.items():
            chunk, pending[p] = recs[:batch], recs[batch:]
            if not chunk:
                continue
            o = offsets[p]
            batch_recs = [Record(r, o + j) for j, r in enumerate(chunk)]
            offsets[p] = o + len(chunk)
            dead += e.process(Batch("s", p, batch_recs, offsets[p], decoded=True), 0)
            e.tracker.processed(("s", p), offsets[p])
            out += e.close_ready(0, 0)
    return out, dead


def rows_of(out):
    return sorted((em.window.start_ms, em.window.end_ms, r["k"], r["n"], r["s"]) for em in out for r in em.rows)


def reference(records, gap=GAP):
    return session_truth(records, gap, "k", "v")


events = st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 60 * MIN), st.integers(-50, 50),
                            st.integers(0, 2)), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(events, st.randoms())
def test_any_order_within_lateness_and_any_partitioning_gives_the_reference(items, rnd):
    records = [{"k": k, "ts": BASE + t, "v": v, "p": p} for k, t, v, p in items]
    bound = 3 * MIN
    shuffled = sorted(records, key=lambda r: r["ts"] + rnd.uniform(0, bound))
    parts = {p: [r for r in shuffled if r["p"] == p] for p in range(3)}
    e = engine(lateness=bound, partitions=range(3))
    out, dead = feed(e, parts)
    out += e.close_all()
    assert dead == []
    assert rows_of(out) == reference(records)
    assert all(em.window.key == em.rows[0]["k"] for em in out)


def test_a_record_bridging_two_sessions_merges_them():
    e = engine(lateness=10 * MIN)
    recs = [{"k": "a", "ts": BASE, "v": 1}, {"k": "a", "ts": BASE + 8 * MIN, "v": 2},
            {"k": "a", "ts": BASE + 4 * MIN, "v": 4}]
    out, _ = feed(e, {0: recs}, batch=1)
    assert out == []  # nothing has passed its end plus lateness yet
    assert e.open_windows() == 1
    out = e.close_all()
    assert rows_of(out) == [(BASE, BASE + 13 * MIN, "a", 3, 7)]
    assert out[0].window.input_count == 3


def test_session_closes_when_the_watermark_passes_its_end_and_later_records_are_late():
    e = engine()
    recs = [{"k": "a", "ts": BASE, "v": 1}, {"k": "b", "ts": BASE + 6 * MIN, "v": 1},
            {"k": "a", "ts": BASE + 2 * MIN, "v": 1}]
    out, dead = feed(e, {0: recs}, batch=1)
    assert rows_of(out) == [(BASE, BASE + 5 * MIN, "a", 1, 1)]
    assert [(d.reason, d.window) for d in dead] == [("late", (BASE + 2 * MIN, BASE + 7 * MIN))]
    # once a's session is written, offsets commit up to the open session of b
    assert e.tracker.safe(("s", 0)) == 0
    e.emitted(out[0])
    assert e.tracker.safe(("s", 0)) == 1


def test_records_exactly_gap_apart_are_two_sessions():
    e = engine()
    out, _ = feed(e, {0: [{"k": "a", "ts": BASE, "v": 1}, {"k": "a", "ts": BASE + GAP, "v": 1}]})
    out += e.close_all()
    assert [r[:2] for r in rows_of(out)] == [(BASE, BASE + GAP), (BASE + GAP, BASE + 2 * GAP)]


def test_replay_from_a_commit_skips_written_sessions_and_rebuilds_open_ones():
    recs = [{"k": "a", "ts": BASE, "v": 1}, {"k": "b", "ts": BASE + 3 * MIN, "v": 1},
            {"k": "a", "ts": BASE + 7 * MIN, "v": 1}, {"k": "b", "ts": BASE + 4 * MIN, "v": 1},
            {"k": "a", "ts": BASE + 9 * MIN, "v": 1}]
    first = engine(lateness=MIN)
    out1, _ = feed(first, {0: recs[:4]}, batch=4)
    assert rows_of(out1) == [(BASE, BASE + 5 * MIN, "a", 1, 1)]
    pk = ("s", 0)
    first.emitted(out1[0])
    committed, mark = first.tracker.safe(pk), first.ledger.mark(pk)
    assert committed == 1  # b's session holds offset 1
    again = engine(lateness=MIN)
    again.seed(pk, mark)
    rest = [Record(r, committed + i) for i, r in enumerate(recs[committed:])]
    dead = again.process(Batch("s", 0, rest, len(recs), decoded=True), 0)
    out2 = again.close_all()
    assert dead == []
    assert rows_of(out2) == [(BASE + 3 * MIN, BASE + 9 * MIN, "b", 2, 2), (BASE + 7 * MIN, BASE + 14 * MIN, "a", 2, 2)]


def test_sessions_of_the_record_key_when_the_aggregate_has_none():
    agg = Aggregator(None, [parse_aggregate("n", "count()")])
    e = WindowEngine(size_ms=GAP, lateness_ms=0, idle_timeout_s=3600, time_mode="event", time_field="ts",
                     record_stages=[], aggregator=agg, tracker=CommitTracker(), max_window_records=10,
                     session_gap_ms=GAP)
    e.assign(("s", 0), 0)
    recs = [Record({"ts": BASE, "user": "u1"}, 0, key=b"x"), Record({"ts": BASE + MIN, "user": "u2"}, 1, key=b"y")]
    e.process(Batch("s", 0, recs, 2, decoded=True), 0)
    assert sorted((r["key"], r["n"]) for em in e.close_all() for r in em.rows) == [("x", 1), ("y", 1)]
    e2 = WindowEngine(size_ms=GAP, lateness_ms=0, idle_timeout_s=3600, time_mode="event", time_field="ts",
                      record_stages=[], aggregator=agg, tracker=CommitTracker(), max_window_records=10,
                      session_gap_ms=GAP)
    e2.assign(("s", 0), 0)
    e2.process(Batch("s", 0, recs, 2, decoded=True, key_field="user"), 0)
    assert sorted(r["key"] for em in e2.close_all() for r in em.rows) == ["u1", "u2"]


def test_revoke_drops_sessions_and_their_holds():
    e = engine(partitions=(0, 1))
    feed(e, {0: [{"k": "a", "ts": BASE, "v": 1}], 1: [{"k": "a", "ts": BASE + MIN, "v": 1}]})
    assert e.open_windows() == 2
    e.revoke(("s", 1))
    assert e.open_windows() == 1
    assert rows_of(e.close_all()) == [(BASE, BASE + GAP, "a", 1, 1)]


def doc(**window):
    return {"pipeline": {"flow": "g >> a >> o"}, "window": window,
            "sources": {"g": {"type": "generator", "count": 1}},
            "stages": {"a": {"type": "aggregate", "key": "user", "aggregates": {"n": "count()"}}},
            "sinks": {"o": {"type": "stdout"}}}


def test_session_config():
    assert load_settings(doc=doc(type="session", gap="30m"), env={}).root.window.gap_ms == 30 * MIN
    for bad, msg in [(dict(type="session"), "needs a gap"), (dict(type="session", gap="5m", size="5m"),
                                                            "size is not for sessions"),
                     (dict(type="session", gap="5m", emit_empty=True), "emit_empty needs a schedule"),
                     (dict(size="5m", gap="5m"), 'gap is for type = "session"')]:
        with pytest.raises(ConfigError, match=msg):
            load_settings(doc=doc(**bad), env={})


def test_sessions_of_buffered_records_for_python_stages():
    e = WindowEngine(size_ms=GAP, lateness_ms=0, idle_timeout_s=3600, time_mode="event", time_field="ts",
                     record_stages=[], aggregator=None, tracker=CommitTracker(), max_window_records=2,
                     session_gap_ms=GAP)
    e.assign(("s", 0), 0)
    recs = [Record({"ts": BASE + t * MIN, "i": i}, i, key=b"u") for i, t in enumerate([2, 0, 1, 20])]
    dead = e.process(Batch("s", 0, recs, 4, decoded=True), 0)
    out = e.close_all()
    assert [(d.reason, d.offset) for d in dead] == [("window_full", 2)]  # a session holds max_window_records
    assert [(em.window.key, [r["i"] for r in em.rows]) for em in out] == [("u", [1, 0]), ("u", [3])]  # by time


def test_a_user_aggregator_merges_when_a_record_bridges_sessions():
    cfg = AggregateConfig.model_validate({"type": "aggregate", "key": "k",
                                          "aggregates": {"spread": "tests.unit.userfns:Spread()"}})
    e = WindowEngine(size_ms=GAP, lateness_ms=10 * MIN, idle_timeout_s=3600, time_mode="event", time_field="ts",
                     record_stages=[], aggregator=build_aggregator(cfg, []), tracker=CommitTracker(),
                     max_window_records=10, session_gap_ms=GAP)
    e.assign(("s", 0), 0)
    recs = [{"k": "a", "ts": BASE, "amount": 5}, {"k": "a", "ts": BASE + 8 * MIN, "amount": 20},
            {"k": "a", "ts": BASE + 4 * MIN, "amount": 9}]  # the last bridges the first two
    e.process(Batch("s", 0, [Record(r, i) for i, r in enumerate(recs)], 3, decoded=True), 0)
    assert [(em.window.start_ms, r["spread"]) for em in e.close_all() for r in em.rows] == [(BASE, 15)]


def test_sinks_upsert_sessions_of_the_record_key_by_start_and_key(tmp_path):
    from rtstream.runtime.supervisor import Runtime

    d = doc(type="session", gap="5m")
    del d["stages"]["a"]["key"]
    d["daemon"] = {"state_dir": str(tmp_path)}
    assert Runtime(load_settings(doc=d, env={})).context.key_fields == ["key"]
