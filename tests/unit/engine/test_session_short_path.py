"""The fold's short path for session windows (rtstream.engine.session_path) against the general path
(engine/fold.py `_join_session`), on random input.

A `time_range` that keeps everything sends every record down the general path: both must give the
same sessions (bounds, rows, counts, in the same order), dead letters, and commit positions, batch by
batch, across two partitions, and again after a restart from a commit (records below the seed replayed).
"""

import random

import orjson
import pytest

from rtstream.engine.commit_rule import CommitTracker
from rtstream.engine.window_engine import WindowEngine
from rtstream.model.batch import Batch
from rtstream.model.record import Record
from rtstream.windows.aggregates import Aggregator, parse_aggregate
from tests.unit.engine.test_fold_short_paths import _maps

SEC = 1_000
GAP = 10 * SEC
BASE = 1_767_225_600_000
PARTS = (0, 1)


def _engine(general: bool, maps: int) -> WindowEngine:
    agg = Aggregator("k", [parse_aggregate("n", "count()"), parse_aggregate("s", "sum(x)")])
    e = WindowEngine(size_ms=GAP, lateness_ms=3 * SEC, idle_timeout_s=3600, time_mode="event", time_field="ts",
                     record_stages=_maps(maps), aggregator=agg, tracker=CommitTracker(), max_window_records=1000,
                     session_gap_ms=GAP)
    if general:
        e.time_range = (0, 1 << 62)
    for p in PARTS:
        e.assign(("s", p), 0)
    return e


def _raw(rnd: random.Random, i: int) -> bytes:
    """Mostly in order, with jitter enough to bridge sessions, some late, some of other shapes."""
    ts = BASE + i * 900 + rnd.randint(-6 * SEC, 2 * SEC)
    doc: dict = {"k": f"k{rnd.randrange(6)}", "ts": ts, "x": rnd.choice([1, 2.5, 1e308, "a", None]), "i": i}
    odd = rnd.random()
    if odd < 0.03:
        doc["ts"] = "2026-01-01T00:00:30Z"
    elif odd < 0.05:
        doc.pop("ts")
    elif odd < 0.06:
        doc["k"] = ["a", "list"]
    elif odd < 0.07:
        doc["k"] = None
    elif odd < 0.085:
        doc["ts"] = ts // 1000  # epoch seconds
    elif odd < 0.1:
        doc["ts"] = ts - 2 * 60_000  # far behind: late, or replayed after a restart
    return orjson.dumps(doc)


def _emissions(e: WindowEngine, out: list, ems: list) -> None:
    for em in ems:
        rows = sorted(repr(sorted(r.items())) for r in em.rows)
        out.append((em.window.start_ms, em.window.end_ms, em.window.key, em.window.input_count, rows))
        e.emitted(em)


def _feed(e: WindowEngine, raws: dict[int, list[bytes]], start: dict[int, int], batches: list[int]) -> list:
    out: list = []
    offsets = dict(start)
    for k, size in enumerate(batches):
        p = PARTS[k % len(PARTS)]
        o = offsets[p]
        recs = [Record(r, o + j) for j, r in enumerate(raws[p][o:o + size])]
        if not recs:
            continue
        offsets[p] = o + len(recs)
        dead = e.process(Batch("s", p, recs, offsets[p]), now=0)
        e.tracker.processed(("s", p), offsets[p])
        out.append([(d.reason, d.partition, d.offset, d.window, d.detail) for d in dead])
        _emissions(e, out, e.close_ready(0, 0))
        out.append([(e.tracker.safe(("s", q)), e.ledger.mark(("s", q))) for q in PARTS])
    return out


def _run(seed: int, general: bool, maps: int) -> list:
    rnd = random.Random(seed)
    raws = {p: [_raw(rnd, i) for i in range(600)] for p in PARTS}
    batches = [rnd.randrange(1, 40) for _ in range(60)]
    e = _engine(general, maps)
    out = _feed(e, raws, {p: 0 for p in PARTS}, batches[:30])
    # a restart from the commit: records from the safe offset on are read again, sessions rebuilt
    again = _engine(general, maps)
    start = {}
    for p in PARTS:
        pk = ("s", p)
        start[p] = e.tracker.safe(pk)
        again.seed(pk, e.ledger.mark(pk))
    out += _feed(again, raws, start, batches)
    _emissions(again, out, again.close_all())
    out.append((again.replayed_done, again.records_in, again.open_windows()))
    return out


@pytest.mark.parametrize("maps", [0, 1])  # 1: a per-record stage that changes, drops, splits and refuses values
@pytest.mark.parametrize("run", range(8))
def test_session_short_path_agrees_with_the_general_path(run: int, maps: int) -> None:
    seed = random.randrange(1 << 30)  # drawn in the test: every pytest worker must collect the same ids
    short, general = _run(seed, False, maps), _run(seed, True, maps)
    assert short == general, f"seed {seed}"
    letters = {d[0] for batch in short if isinstance(batch, list) for d in batch if isinstance(d, tuple) and
               isinstance(d[0], str)}
    assert {"late", "invalid", "no_time"} <= letters, f"seed {seed}"  # the refusals were exercised
    assert sum(isinstance(x, tuple) and len(x) == 5 for x in short) > 5, f"seed {seed}"  # sessions were emitted
