"""Engine snapshots: restoring one and reading on gives what an uninterrupted run gives."""

from __future__ import annotations

from rtstream.engine.commit_rule import CommitTracker
from rtstream.engine.window_engine import WindowEngine
from rtstream.model.batch import Batch
from rtstream.model.record import Record
from rtstream.runtime.checkpoint_store import CheckpointStore
from rtstream.windows.aggregates import Aggregator, parse_aggregate

BASE = 1_767_225_600_000
MIN = 60_000
PK = ("s", 0)


def engine(**kw):
    agg = Aggregator("k", [parse_aggregate("n", "count()"), parse_aggregate("u", "count_distinct(v)")])
    e = WindowEngine(size_ms=5 * MIN, lateness_ms=0, idle_timeout_s=3600, time_mode="event", time_field="ts",
                     record_stages=[], aggregator=agg, tracker=CommitTracker(), max_window_records=10, **kw)
    e.assign(PK, 0)
    return e


def feed(e, records, first_offset):
    out = []
    for i, r in enumerate(records):
        off = first_offset + i
        e.process(Batch("s", 0, [Record(r, off)], off + 1, decoded=True), 0)
        e.tracker.processed(PK, off + 1)
        out += e.close_ready(0, 0)
    return out


def rows(emissions):
    return sorted((em.window.start_ms, r["k"], r["n"], r["u"]) for em in emissions for r in em.rows)


def records(ts_minutes):
    return [{"k": "ab"[i % 2], "ts": BASE + t * MIN, "v": i % 3} for i, t in enumerate(ts_minutes)]


def test_restore_brings_back_open_windows_and_unwritten_closed_ones(tmp_path):
    recs = records([0, 1, 2, 6, 7, 3.5, 11, 12, 8, 16])  # 3.5 after 6 and 7: late once window 0 closed
    whole = engine()
    expected = rows(feed(whole, recs, 0) + whole.close_all())

    first = engine()
    out = feed(first, recs[:5], 0)
    assert [em.window.start_ms for em in out] == [BASE]  # closed, handed to the sinks, never written
    position, blob = first.snapshot(PK)
    assert position == 5
    store = CheckpointStore(tmp_path / "cp.db", "p")
    store.open()
    store.save([("s", 0, position, blob)])
    (pos, saved), = store.load("s", [0, 1]).values()
    store.close()

    again = engine()
    assert again.restore(PK, pos, saved, 0) == 1  # window 5..10 was open
    restored = again.take_restored()
    assert rows(restored) == rows(out)  # the closed window goes to the sinks again
    assert again.tracker.safe(PK) == 0  # and holds the commit until it is written
    rest = feed(again, recs[5:], 5) + again.close_all()
    assert rows(restored + rest) == expected
    for em in restored + rest:
        again.emitted(em)
    assert again.tracker.safe(PK) == 10


def test_session_state_survives_a_checkpoint():
    recs = records([0, 1, 2, 9, 10, 30])
    whole = engine(session_gap_ms=5 * MIN)
    expected = rows(feed(whole, recs, 0) + whole.close_all())
    first = engine(session_gap_ms=5 * MIN)
    feed(first, recs[:4], 0)
    position, blob = first.snapshot(PK)
    again = engine(session_gap_ms=5 * MIN)
    again.restore(PK, position, blob, 0)
    got = again.take_restored() + feed(again, recs[4:], 4) + again.close_all()
    assert rows(got) == expected
