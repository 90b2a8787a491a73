"""Count windows (`[window] type = "count"`, `size = N`) in the engine, against an independent
reference: every N records of a key (per partition, in offset order) make one window, whatever their
times; the commit rule holds each unfinished window's first offset and the last checkpoint; a
checkpoint restored mid-window carries on exactly as an uninterrupted run."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from rtstream.config.load import load_settings
from rtstream.engine.commit_rule import CommitTracker
from rtstream.engine.window_engine import WindowEngine
from rtstream.model.batch import Batch
from rtstream.model.errors import ConfigError
from rtstream.model.record import Record
from rtstream.windows.aggregates import Aggregator, parse_aggregate
from tests.data import BASE_MS
from tests.unit.config.test_config import deep, refused


def engine(size, key="k", aggregated=True):
    agg = Aggregator(key, [parse_aggregate("n", "count()"), parse_aggregate("s", "sum(v)")]) if aggregated else None
    e = WindowEngine(size_ms=1, lateness_ms=0, idle_timeout_s=3600, time_mode="event", time_field="ts",
                     record_stages=[], aggregator=agg, tracker=CommitTracker(), max_window_records=100)
    e.use_counts(size)
    e.assign(("s", 0), 0)
    return e


def feed(e, records, start=0, batch=7, stop=None):
    """Fold records[start:stop] in batches; returns the emissions."""
    out, dead = [], []
    stop = len(records) if stop is None else stop
    for i in range(start, stop, batch):
        chunk = records[i:min(i + batch, stop)]
        recs = [Record(r, i + j) for j, r in enumerate(chunk)]
        dead += e.process(Batch("s", 0, recs, i + len(recs), decoded=True), 0)
        e.tracker.processed(("s", 0), i + len(recs))
        out += e.close_ready(0, 0)
        for em in out:
            if em.id in e.ledger.pending:
                e.emitted(em)
    return out, dead


def reference(records, size):
    """Per key, in order: windows of `size` records; (key, first index) -> (count, sum, min ts, max ts)."""
    by_key = defaultdict(list)
    for i, r in enumerate(records):
        by_key[r["k"]].append((i, r))
    out = {}
    for k, items in by_key.items():
        for j in range(0, len(items) - len(items) % size, size):
            win = items[j:j + size]
            out[(k, win[0][0])] = (size, sum(r["v"] for _, r in win), min(r["ts"] for _, r in win),
                                   max(r["ts"] for _, r in win))
    return out


def rows_of(emissions, records):
    got = {}
    for em in emissions:
        (row,) = em.rows
        first = em.partitions[0][1]
        got[(row["k"], first)] = (row["n"], row["s"], em.window.start_ms, em.window.end_ms - 1)
    return got


def records_for(seed, n=300, keys="abcde"):
    rnd = random.Random(seed)
    # times out of order (a record may be minutes older than the one before): count windows ignore them
    return [{"k": rnd.choice(keys), "v": rnd.randint(-9, 9), "ts": BASE_MS + rnd.randint(0, 600_000)} for _ in range(n)]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("size", [1, 3, 10])
def test_count_windows_match_the_reference_on_out_of_order_input(seed, size):
    records = records_for(seed)
    e = engine(size)
    out, dead = feed(e, records)
    assert dead == []
    assert rows_of(out, records) == reference(records, size)
    unfinished = sum(1 for k in "abcde" if sum(r["k"] == k for r in records) % size)
    assert e.open_windows() == unfinished
    # the commit: held at the first offset of the oldest unfinished window (and at the partition's start,
    # as no checkpoint was saved)
    assert e.tracker.safe(("s", 0)) == 0
    e.checkpointed({("s", 0): len(records)})
    firsts = {}
    for i, r in enumerate(records):
        firsts.setdefault(r["k"], []).append(i)
    open_firsts = [idx[len(idx) - len(idx) % size] for idx in firsts.values() if len(idx) % size]
    assert e.tracker.safe(("s", 0)) == min(open_firsts, default=len(records))


@pytest.mark.parametrize("seed", range(5))
def test_a_checkpoint_restored_mid_window_gives_the_uninterrupted_output(seed):
    records = records_for(seed, n=200)
    size = 4
    whole, _ = feed(engine(size), records)
    cut = random.Random(seed).randint(20, 180)
    first = engine(size)
    before, _ = feed(first, records, stop=cut)
    pos, blob = first.snapshot(("s", 0))
    assert pos == cut
    second = engine(size)
    assert second.restore(("s", 0), pos, blob, 0) == first.open_windows()
    after, _ = feed(second, records, start=cut)
    assert rows_of(before + after, records) == rows_of(whole, records) == reference(records, size)


def test_without_an_aggregate_the_records_themselves_in_the_order_they_came():
    records = [{"k": "a", "v": i, "ts": BASE_MS - i} for i in range(7)]
    e = engine(3, key=None, aggregated=False)
    out, _ = feed(e, records, batch=2)
    assert [[r["v"] for r in em.rows] for em in out] == [[0, 1, 2], [3, 4, 5]]
    assert out[0].window.start_ms == BASE_MS - 2 and out[0].window.end_ms == BASE_MS + 1
    (last,) = e.close_all()  # the end of a finite run: the unfinished window goes out with what it has
    assert [r["v"] for r in last.rows] == [6] and last.window.input_count == 1


def test_a_record_without_its_key_is_dead_lettered_with_the_reason():
    e = engine(2)
    out, dead = feed(e, [{"v": 1, "ts": BASE_MS}, {"k": [1], "v": 1, "ts": BASE_MS}, {"k": "a", "v": "x", "ts": BASE_MS}])
    assert [(d.reason, d.detail, d.offset) for d in dead] == [
        ("invalid", "missing key field 'k'", 0), ("invalid", "key field 'k' is not a scalar", 1),
        ("invalid", "field 'v' of aggregate 's' is not a finite number: 'x'", 2)]
    assert out == [] and e.open_windows() == 0


def test_a_time_window_checkpoint_is_not_restored_into_count_windows():
    tw = WindowEngine(size_ms=60_000, lateness_ms=0, idle_timeout_s=3600, time_mode="event", time_field="ts",
                      record_stages=[], aggregator=None, tracker=CommitTracker(), max_window_records=100)
    tw.assign(("s", 0), 0)
    tw.process(Batch("s", 0, [Record({"ts": BASE_MS}, 0)], 1, decoded=True), 0)
    tw.tracker.processed(("s", 0), 1)
    pos, blob = tw.snapshot(("s", 0))
    with pytest.raises(ValueError, match="holds time windows; this config has count windows"):
        engine(2).restore(("s", 0), pos, blob, 0)


def test_the_config_of_a_count_window():
    doc = deep(window={"type": "count", "size": 5}, state={"checkpoint_interval": "1s"})
    s = load_settings(doc=doc, env={})
    assert (s.root.window.type, s.root.window.records) == ("count", 5)
    assert refused(deep(window={"type": "count", "size": "5s"}, state={"checkpoint_interval": "1s"}))["window"] == \
        "a count window's size is a number of records, e.g. size = 100 (got '5s')"
    assert "a count window's size is a number" in refused(deep(window={"type": "count", "size": True}))["window"]
    assert "greater than or equal to 1" in str(refused(deep(window={"type": "count", "size": 0},
                                                             state={"checkpoint_interval": "1s"})))
    assert "needs its number of records" in refused(deep(window={"type": "count"}))["window"]
    assert "hop is not for count windows" in refused(deep(window={"type": "count", "size": 3, "hop": "1s"}))["window"]
    assert refused(deep(window={"type": "count", "size": 3}))["state.checkpoint_interval"].startswith(
        'window.type = "count" needs it')
    big = deep(pipeline__flow="src >> out", stages=None, window={"type": "count", "size": 50},
               state={"checkpoint_interval": "1s"}, daemon={"max_window_records": 10})
    assert refused(big)["window.size"] == "50 records is more than daemon.max_window_records = 10 a window may hold"
    with pytest.raises(ConfigError):
        load_settings(doc=deep(window={"type": "tumbling", "size": "5m", "records": 3}), env={})
