"""Poison input: a thousand malformed records of twenty kinds among good ones. Every bad one lands in
dead letters with a reason, the daemon never stops, and the good records' windows are exact."""

from __future__ import annotations

import random

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.data import BASE_MS, make_events
from tests.reference import tumbling_truth
from tests.support import read_jsonl, run_cli, window_files, write_config

T = BASE_MS + 60_000


def poison_kinds(rnd: random.Random) -> list[tuple[str, bytes, str]]:
    """(kind, raw line, expected reason): twenty ways a record goes wrong."""
    n = rnd.randrange(10**6)
    return [
        ("truncated", b'{"user_id": "p%d", "ts": ' % n, "decode"),
        ("trailing garbage", b'{"user_id": "p", "ts": %d} xx' % T, "decode"),
        ("not json", b"user=p ts=%d" % T, "decode"),
        ("array", b"[1, 2, %d]" % n, "decode"),
        ("string", b'"just a string %d"' % n, "decode"),
        ("number", b"%d" % n, "decode"),
        ("null", b"null", "decode"),
        ("invalid utf-8", b'{"user_id": "\xff\xfe%d", "ts": %d}' % (n, T), "decode"),
        ("NaN literal", b'{"user_id": "p", "ts": %d, "amount": NaN}' % T, "decode"),
        ("depth bomb", b"[" * 5000 + b"]" * 5000, "decode"),
        ("object depth bomb", b'{"a":' * 3000 + b"1" + b"}" * 3000, "decode"),
        ("missing time", b'{"user_id": "p", "amount": %d}' % n, "no_time"),
        ("null time", b'{"user_id": "p", "ts": null, "amount": 1}', "no_time"),
        ("word time", b'{"user_id": "p", "ts": "yesterday", "amount": 1}', "no_time"),
        ("bool time", b'{"user_id": "p", "ts": true, "amount": 1}', "no_time"),
        ("huge time", b'{"user_id": "p", "ts": 1e400, "amount": 1}', "decode"),
        ("missing key", b'{"ts": %d, "amount": 1}' % T, "invalid"),
        ("object key", b'{"user_id": {"a": 1}, "ts": %d, "amount": 1}' % T, "invalid"),
        ("string amount", b'{"user_id": "p", "ts": %d, "amount": "12"}' % T, "invalid"),
        ("huge amount", b'{"user_id": "p", "ts": %d, "amount": 1e308, "x": "%s"}' % (T, b"y" * 100_000), "ok-or-invalid"),
    ]


def test_a_thousand_poison_records_among_good_ones(tmp_path):
    rnd = random.Random(91)
    good = make_events(5000, span_s=900, seed=92)
    lines: list[bytes] = [orjson.dumps(e) for e in good]
    expected: list[str] = []
    for _ in range(1000):
        kind, raw, reason = rnd.choice(poison_kinds(rnd))
        if reason == "ok-or-invalid":
            continue
        lines.insert(rnd.randrange(len(lines) + 1), raw)
        expected.append(reason)
    (tmp_path / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    doc = {
        "pipeline": {"name": "poison", "flow": "events >> per_user >> out"},
        "window": {"size": "5m", "lateness": "20m"},  # lateness covers the whole file: "late" is not tested here
        "sources": {"events": {"type": "file", "path": str(tmp_path / "in.jsonl"), "batch_size": 97}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id",
                                "aggregates": {"events": "count()", "spent": "sum(amount)"}}},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out")}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state")},
    }
    res = run_cli("run", "-c", str(write_config(tmp_path / "p.toml", doc)))
    assert res.returncode == 0, res.stderr[-3000:]
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert sorted(d["reason"] for d in dead) == sorted(expected)
    raw = (tmp_path / "in.jsonl").read_bytes()
    for d in dead:
        assert d["detail"] and d["source"] == "events" and raw[d["offset"]:d["offset"] + 1] != b"\n"
    got = {(r["window_start"], r["user_id"]): r for rows in window_files(tmp_path / "out").values() for r in rows}
    truth = tumbling_truth(good, 300, "user_id")
    assert {k: v["events"] for k, v in got.items()} == {k: v["events"] for k, v in truth.items()}


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_never_crash_the_engine(raw):
    from rtstream.engine.commit_rule import CommitTracker
    from rtstream.engine.window_engine import WindowEngine
    from rtstream.model.batch import Batch
    from rtstream.model.record import Record
    from rtstream.windows.aggregates import Aggregator, parse_aggregate

    agg = Aggregator("user_id", [parse_aggregate("n", "count()"), parse_aggregate("s", "sum(amount)"),
                                 parse_aggregate("d", "count_distinct(page)")])
    e = WindowEngine(size_ms=60_000, lateness_ms=0, idle_timeout_s=60, time_mode="event", time_field="ts",
                     record_stages=[], aggregator=agg, tracker=CommitTracker(), max_window_records=10)
    e.assign(("s", 0), 0)
    dead = e.process(Batch("s", 0, [Record(raw, 0)], 1), 0)
    assert len(dead) <= 1 and all(d.reason in {"decode", "no_time", "invalid"} for d in dead)
    e.close_all()


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                    max_leaves=10))
def test_any_json_value_in_any_field_never_crashes(value):
    from rtstream.engine.commit_rule import CommitTracker
    from rtstream.engine.window_engine import WindowEngine
    from rtstream.model.batch import Batch
    from rtstream.model.record import Record
    from rtstream.windows.aggregates import Aggregator, parse_aggregate

    specs = [parse_aggregate(n, e) for n, e in {"n": "count()", "s": "sum(v)", "lo": "min(v)", "hi": "max(v)",
                                                  "m": "mean(v)", "f": "first(v)", "d": "count_distinct(v)"}.items()]
    e = WindowEngine(size_ms=60_000, lateness_ms=0, idle_timeout_s=60, time_mode="event", time_field="ts",
                     record_stages=[], aggregator=Aggregator("k", specs), tracker=CommitTracker(), max_window_records=10)
    e.assign(("s", 0), 0)
    recs = [Record({"k": value if isinstance(value, str) else "k", "ts": value, "v": value}, 0),
            Record({"k": "k", "ts": T, "v": value}, 1), Record({"k": value, "ts": T, "v": 1}, 2)]
    e.process(Batch("s", 0, recs, 3, decoded=True), 0)
    for em in e.close_all():
        assert all("window_start" in r for r in em.rows)
