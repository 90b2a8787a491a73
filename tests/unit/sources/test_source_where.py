"""A source's `where` in the fold and in RecordStaging: records it does not hold for are skipped,
counted as read, never dead-lettered, and hold back no commit."""

from __future__ import annotations

from rtstream.engine.commit_rule import CommitTracker
from rtstream.engine.window_engine import WindowEngine
from rtstream.model.batch import Batch
from rtstream.model.record import Record
from rtstream.runtime.awaiting_stages import RecordStaging
from rtstream.where.language import compile_where
from rtstream.windows.aggregates import Aggregator, parse_aggregate

MIN = 60_000
BASE = 1_767_225_600_000


def engine() -> WindowEngine:
    agg = Aggregator("k", [parse_aggregate("n", "count()")])
    return WindowEngine(size_ms=MIN, lateness_ms=0, idle_timeout_s=3600, time_mode="event", time_field="ts",
                        record_stages=[], aggregator=agg, tracker=CommitTracker(), max_window_records=10)


def raw_batch(source: str, values: list[bytes]) -> Batch:
    return Batch(source, 0, [Record(v, i) for i, v in enumerate(values)], len(values))


VALUES = [b'{"k": "a", "ts": %d, "amount": 5}' % BASE, b'{"k": "b", "ts": %d, "amount": 50}' % BASE,
          b'{"k": "a", "ts": %d, "amount": "50"}' % BASE, b'{"k": "c", "ts": %d}' % (BASE + 1), b"not json"]


def test_the_fold_skips_records_a_source_where_refuses() -> None:
    e = engine()
    e.source_where = {"s": compile_where("amount >= 10")}
    e.assign(("s", 0), 0)
    e.assign(("other", 0), 0)
    dead = e.process(raw_batch("s", VALUES), 0)
    assert [d.reason for d in dead] == ["decode"]  # the filter comes after decoding; skips are not dead letters
    e.process(raw_batch("other", VALUES[:1]), 0)  # another source keeps everything
    assert e.records_in == 6 and e.filtered_out == 3
    [em] = e.close_all()
    assert sorted((r["k"], r["n"]) for r in em.rows) == [("a", 1), ("b", 1)]


async def test_staging_filters_before_its_stages() -> None:
    staging = RecordStaging([], {}, {"s": compile_where("k != 'a'")})
    staged, dead = await staging.run(raw_batch("s", VALUES))
    assert [r.value["k"] for r in staged.records] == ["b", "c"]
    assert staged.read == 5 and staging.filtered_out == 2
    assert [d.reason for d in dead] == ["decode"]
