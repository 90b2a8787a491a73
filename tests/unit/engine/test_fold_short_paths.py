"""The fold's short path (rtstream.engine.fold) against its general path, on random input.

The short path takes a record whose tumbling window is open: an aggregate's update, or, with no
aggregate, the record buffered as it came (Nexmark q0's shape); with a source's `where` checked
first. A `time_range` that keeps everything sends every record down the general path: both must
give the same rows (in the same order), dead letters, counts and commit positions, batch by batch.
"""

import random
from pathlib import Path

import orjson
import pytest

from rtstream.engine.commit_rule import CommitTracker
from rtstream.engine.window_engine import WindowEngine
from rtstream.model.batch import Batch
from rtstream.model.record import Record
from rtstream.runtime.context import Context
from rtstream.stages.map import MapStage
from rtstream.stages.python import PythonConfig
from rtstream.where.language import compile_where
from rtstream.windows.aggregates import Aggregator, parse_aggregate

MIN = 60_000
BASE = 1_767_225_600_000


def _reshape(v: dict) -> object:
    """A map with every outcome: the value changed, dropped, split in two, refused, or a wrong shape."""
    i = v.get("i", 0)
    if i % 11 == 0:
        return None
    if i % 13 == 0:
        return [{**v, "half": 1}, {**v, "half": 2, "ts": v.get("ts", 0) + 61_000 if isinstance(v.get("ts"), int) else 0}]
    if i % 17 == 0:
        raise ValueError(f"no {i}")
    if i % 19 == 0:
        return [1, 2]
    return {**v, "x2": i * 2}


def _stamp(v: dict) -> dict:
    return {**v, "stamped": True}


def _maps(n: int) -> list[MapStage]:
    fns = [_reshape, _stamp][:n]
    return [MapStage(f"m{k}", PythonConfig(type="map", call=fn), Context("p", Path("/nonexistent")))
            for k, fn in enumerate(fns)]


def _engine(general: bool, aggregated: bool, where: str | None, room: int,
            maps: int = 0, hop: int | None = None) -> tuple[WindowEngine, CommitTracker]:
    t = CommitTracker()
    agg = Aggregator("k", [parse_aggregate("n", "count()"), parse_aggregate("s", "sum(x)")]) if aggregated else None
    e = WindowEngine(size_ms=MIN, lateness_ms=5_000, idle_timeout_s=3600, time_mode="event", time_field="ts",
                     record_stages=_maps(maps), aggregator=agg, tracker=t, max_window_records=room,
                     source_where={"s": compile_where(where)} if where else None, hop_ms=hop)
    if general:
        e.time_range = (0, 1 << 62)
    e.assign(("s", 0), 0)
    return e, t


def _raw(rnd: random.Random, i: int) -> bytes:
    ts = BASE + i * 400 + rnd.randint(-8_000, 2_000)
    doc = {"k": f"k{rnd.randrange(5)}", "ts": ts, "x": rnd.choice([1, 2.5, 1e308, "a", None]),
           "kind": rnd.choice("abc"), "i": i}
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
        doc["ts"] = BASE + i * 400 - 20 * MIN  # far behind: late
    return orjson.dumps(doc)


def _run(seed: int, general: bool, aggregated: bool, where: str | None, room: int, maps: int = 0,
         hop: int | None = None) -> list:
    rnd = random.Random(seed)
    e, t = _engine(general, aggregated, where, room, maps, hop)
    out: list = []
    offset = 0
    for _ in range(40):
        raws = [_raw(rnd, offset + j) for j in range(rnd.randrange(1, 60))]
        recs = [Record(r, offset + j) for j, r in enumerate(raws)]
        dead = e.process(Batch("s", 0, recs, offset + len(recs)), now=0)
        t.processed(("s", 0), offset + len(recs))
        out.append([(d.reason, d.offset, d.window, d.detail, d.stage) for d in dead])
        for em in e.close_ready(0, 0):
            rows = em.rows if not aggregated else sorted(repr(sorted(r.items())) for r in em.rows)
            out.append((em.window.start_ms, em.window.input_count, rows))
            e.emitted(em)
        out.append((t.safe(("s", 0)), e.filtered_out, e.store.buffered.copy()))
        offset += len(raws)
    for em in e.close_all():
        out.append((em.window.start_ms, em.window.input_count, em.rows if not aggregated else len(em.rows)))
    return out


@pytest.mark.parametrize("aggregated", [False, True])
@pytest.mark.parametrize("where", [None, "kind in ['a', 'b']"])
@pytest.mark.parametrize("room", [7, 1000])
def test_short_path_agrees_with_the_general_path(aggregated: bool, where: str | None, room: int) -> None:
    """Rows in the same order (a buffered window's records in time order, ties in offset order),
    the same late, full-window, decode and time refusals, counts and safe positions."""
    for _ in range(5):
        seed = random.randrange(1 << 30)
        short, general = _run(seed, False, aggregated, where, room), _run(seed, True, aggregated, where, room)
        assert short == general, f"seed {seed}"


@pytest.mark.parametrize("aggregated", [False, True])
@pytest.mark.parametrize("maps", [1, 2])
@pytest.mark.parametrize("room", [7, 1000])
def test_short_path_with_per_record_stages_agrees_with_the_general_path(aggregated: bool, maps: int,
                                                                         room: int) -> None:
    """Per-record stages that change, drop, split and refuse values: each value takes the short path
    or the general one, with the same rows, stage_error dead letters, counts and positions."""
    for _ in range(5):
        seed = random.randrange(1 << 30)
        short = _run(seed, False, aggregated, "kind != 'c'", room, maps)
        general = _run(seed, True, aggregated, "kind != 'c'", room, maps)
        assert short == general, f"seed {seed}"
        assert any(d[0] == "stage_error" for batch in short if isinstance(batch, list) for d in batch)


@pytest.mark.parametrize("hop", [MIN // 4, MIN // 3])
@pytest.mark.parametrize("maps", [0, 1])
def test_hopping_short_path_agrees_with_the_general_path(hop: int, maps: int) -> None:
    """Hopping windows (aggregated): a value whose windows are all open is folded into each, latest
    first; a sum that overflows in one window only refuses it for that window; the rows, dead
    letters (with their windows), counts and positions match the general path's."""
    overflowed = 0
    for _ in range(8):  # random seeds; not every one overflows a sum, so the case is counted over all
        seed = random.randrange(1 << 30)
        short = _run(seed, False, True, "kind != 'c'", 1000, maps, hop)
        general = _run(seed, True, True, "kind != 'c'", 1000, maps, hop)
        assert short == general, f"seed {seed}"
        overflowed += any(d[0] == "invalid" and d[2] is not None for b in short if isinstance(b, list) for d in b)
    assert overflowed >= 2  # the per-window refusal was exercised (most seeds do)


def test_buffered_short_path_refuses_past_max_window_records() -> None:
    """A full window refuses the record with the reason, on the short path as on the general one."""
    e, t = _engine(False, False, None, 3)
    recs = [Record(orjson.dumps({"ts": BASE + i, "i": i}), i) for i in range(5)]
    dead = e.process(Batch("s", 0, recs, 5), now=0)
    assert [(d.reason, d.offset) for d in dead] == [("window_full", 3), ("window_full", 4)]
    [em] = e.close_all()
    assert [r["i"] for r in em.rows] == [0, 1, 2] and em.window.input_count == 3


def test_buffered_short_path_keeps_time_order_and_where() -> None:
    """Out-of-order records of an open window come out in time order; `where` skips without a dead letter."""
    e, t = _engine(False, False, "kind == 'bid'", 100)
    docs = [{"ts": BASE + 50, "kind": "bid", "i": 0}, {"ts": BASE + 10, "kind": "bid", "i": 1},
            {"ts": BASE + 5, "kind": "person", "i": 2}, {"ts": BASE + 10, "kind": "bid", "i": 3},
            {"ts": BASE + 1, "kind": "bid", "i": 4}]
    recs = [Record(orjson.dumps(d), i) for i, d in enumerate(docs)]
    assert e.process(Batch("s", 0, recs, 5), now=0) == []
    assert e.filtered_out == 1
    [em] = e.close_all()
    assert [r["i"] for r in em.rows] == [4, 1, 3, 0]
