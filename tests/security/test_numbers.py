"""Numbers: integers past 64 bits stay exact, and a sum or mean that would overflow is refused."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtstream.engine.decode import JSONDecodeError, decode_json, decoder_for
from rtstream.windows.aggregates import Aggregator, parse_aggregate
from tests.data import BASE_MS
from tests.support import read_jsonl, run_cli, window_files, write_config

KEY_A = 123456789012345678901234567890
KEY_B = 123456789012345678901234567891  # the same float as KEY_A


def test_plain_orjson_merges_the_two_keys():
    # why decode_json exists: orjson turns both into the same float
    assert orjson.loads(str(KEY_A)) == orjson.loads(str(KEY_B))


@pytest.mark.parametrize("raw,want", [
    (b'{"k": 123456789012345678901234567890}', {"k": KEY_A}),
    (b'{"k": -9223372036854775809}', {"k": -9223372036854775809}),  # minus and 19 digits, past i64
    (b'{"k": 18446744073709551616}', {"k": 2**64}),  # 20 digits, past u64
    (b'{"k": 18446744073709551615, "ts": 1764000000000000000}', {"k": 2**64 - 1, "ts": 1764000000000000000}),
    (b'{"a": "12345678901234567890123", "b": [1, {"c": 99999999999999999999999}]}',
     {"a": "12345678901234567890123", "b": [1, {"c": 99999999999999999999999}]}),
    ('{"k": 123456789012345678901234567890, "s": "é"}', {"k": KEY_A, "s": "é"}),
])
def test_decode_keeps_integers_exact(raw, want):
    got = decode_json(raw)
    assert got == want
    assert [type(v) for v in got.values()] == [type(v) for v in want.values()]


@pytest.mark.parametrize("raw", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b'{"a": 1e400}',
                                 b'{"k": 123456789012345678901234567890, "a": NaN}',
                                 b'{"k": 123456789012345678901234567890, "a": 1e400}',
                                 b'{"k": 1' + b"0" * 400 + b"}", b'{"a": 1', b'\xff{"a": 1}',
                                 b'{"k": 123456789012345678901234567890, "s": "\xff"}',
                                 b"[" * 2000 + b"]" * 2000])
def test_decode_refuses_what_orjson_refuses(raw):
    # on both paths: NaN/Infinity, numbers past the float range, bad UTF-8, nesting orjson refuses
    with pytest.raises(JSONDecodeError):
        decode_json(raw)


def test_decode_refuses_deep_nesting_on_the_exact_path_too():
    raw = b"[" * 1000 + b"123456789012345678901234567890" + b"]" * 1000
    with pytest.raises(JSONDecodeError):
        decode_json(raw)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text() |
                    st.floats(allow_nan=False, allow_infinity=False),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4),
                    max_leaves=20))
def test_decode_round_trips_any_json_value(value):
    import json

    try:
        raw = json.dumps(value).encode()
    except ValueError:  # an integer past the interpreter's printing limit
        return
    if any(isinstance(v, float) for v in _leaves(value)) or any(
            isinstance(v, int) and not -1.7e308 < v < 1.7e308 for v in _leaves(value)):
        return  # floats: repr round-trips are checked by orjson's own tests; huge ints are refused
    assert decode_json(raw) == value


def _leaves(v):
    if isinstance(v, dict):
        for x in v.values():
            yield from _leaves(x)
    elif isinstance(v, list):
        for x in v:
            yield from _leaves(x)
    else:
        yield v


@given(st.binary(max_size=64))
def test_decode_never_crashes_on_any_bytes(raw):
    try:
        decode_json(raw)
    except JSONDecodeError:
        pass


def aggregator():
    return Aggregator("k", [parse_aggregate("n", "count()"), parse_aggregate("total", "sum(amount)"),
                            parse_aggregate("avg", "mean(amount)"), parse_aggregate("hi", "max(amount)")])


def test_two_30_digit_keys_stay_two_keys_through_decode_and_aggregate():
    agg = aggregator()
    table = agg.new_table()
    for raw in (b'{"k": 123456789012345678901234567890, "amount": 100000000000000000000000000001}',
                b'{"k": 123456789012345678901234567891, "amount": 5}',
                b'{"k": 123456789012345678901234567890, "amount": 100000000000000000000000000001}'):
        assert agg.update(table, decode_json(raw), 0) is None
    rows = agg.rows(table, "S", "E")
    assert [(r["k"], r["n"], r["total"]) for r in rows] == [(KEY_A, 2, 200000000000000000000000000002),
                                                             (KEY_B, 1, 5)]
    assert type(rows[0]["total"]) is int


@pytest.mark.parametrize("odd", [b'{"k": 123456789012345678901234567890}', b'{"k": -9223372036854775809}'])
def test_one_big_integer_in_a_batch_makes_the_whole_batch_decode_exactly(odd):
    plain = [b'{"k": %d, "ts": 1767225600000}' % i for i in range(1000)]
    assert decoder_for(plain) is orjson.loads  # the common case: one scan, then plain orjson
    batch = plain[:500] + [odd] + plain[500:]
    loads = decoder_for(batch)
    assert [loads(r) for r in batch] == [decode_json(r) for r in batch]
    assert loads(odd)["k"] == int(odd[6:-1])
    assert decoder_for([b"{}", None]) is decode_json  # cannot be scanned whole: every record checked


def test_a_sum_that_would_overflow_is_refused_and_touches_nothing():
    agg = aggregator()
    table = agg.new_table()
    assert agg.update(table, {"k": "a", "amount": 1.7e308}, 0) is None
    before = [list(v) for v in table.values()]
    assert agg.update(table, {"k": "a", "amount": 1.7e308}, 0) == "sum of amount overflows (aggregate 'total')"
    assert agg.update(table, {"k": "a", "amount": -1.7e308}, 0) is None  # back towards zero is fine
    assert agg.update(table, {"k": "b", "amount": 1.7e308}, 0) is None  # another key has its own sum
    assert [list(v) for v in table.values()][0] != before[0]
    rows = agg.rows(table, "S", "E")
    assert all(math.isfinite(r[name]) for r in rows for name in ("total", "avg", "hi"))


def test_a_mean_that_would_overflow_is_refused():
    agg = Aggregator(None, [parse_aggregate("avg", "mean(amount)")])
    table = agg.new_table()
    assert agg.update(table, {"amount": 1.7e308}, 0) is None
    assert agg.update(table, {"amount": 1.7e308}, 0) == "mean of amount overflows (aggregate 'avg')"
    assert agg.rows(table, "S", "E")[0]["avg"] == 1.7e308


@pytest.mark.parametrize("amount,shown", [(float("nan"), "nan"), (float("inf"), "inf"), (float("-inf"), "-inf"),
                                          (10**400, "an integer of 1329 bits")])
def test_non_finite_and_out_of_range_inputs_are_refused(amount, shown):
    table: dict = {}
    why = aggregator().update(table, {"k": "a", "amount": amount}, 0)
    assert why == f"field 'amount' of aggregate 'total' is not a finite number: {shown}"
    assert table == {}


def test_an_exact_integer_sum_past_the_float_range_is_refused():
    # an int sum may outgrow a float; it is stopped at the float range, so a float can always join it
    agg = Aggregator(None, [parse_aggregate("total", "sum(amount)")])
    table = agg.new_table()
    big = int(1.7e308)
    assert agg.update(table, {"amount": big}, 0) is None
    assert agg.update(table, {"amount": big}, 0) == "sum of amount overflows (aggregate 'total')"
    assert agg.update(table, {"amount": 0.5}, 0) is None


def test_daemon_dead_letters_an_overflowing_sum_as_invalid(tmp_path):
    lines = [{"user_id": "u1", "ts": BASE_MS + 1000, "amount": 1.7e308},
             {"user_id": "u1", "ts": BASE_MS + 2000, "amount": 1.7e308},  # same window: the sum would be inf
             {"user_id": "u2", "ts": BASE_MS + 3000, "amount": 2.5},
             {"user_id": "u1", "ts": BASE_MS + 400_000, "amount": 1.0}]
    (tmp_path / "in.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    doc = {
        "pipeline": {"name": "numbers", "flow": "events >> per_user >> [files, show]"},
        "window": {"size": "5m", "time": "event", "lateness": "10s"},
        "sources": {"events": {"type": "file", "path": str(tmp_path / "in.jsonl")}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id",
                                "aggregates": {"n": "count()", "spent": "sum(amount)", "avg": "mean(amount)"}}},
        "sinks": {"files": {"type": "file", "path": str(tmp_path / "out")}, "show": {"type": "stdout"}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state")},
    }
    res = run_cli("run", "-c", str(write_config(tmp_path / "n.toml", doc)))
    assert res.returncode == 0, res.stderr
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert [(d["reason"], d["detail"]) for d in dead] == [("invalid", "sum of amount overflows (aggregate 'spent')")]
    rows = [r for rows in window_files(tmp_path / "out").values() for r in rows]
    first = {r["user_id"]: r for r in rows if r["window_start"].startswith("2026-01-01T00:00")}
    assert first["u1"]["n"] == 1 and first["u1"]["spent"] == 1.7e308 and first["u2"]["spent"] == 2.5
    for text in [*(p.read_text() for p in (tmp_path / "out").glob("*.jsonl")), res.stdout]:
        assert "inf" not in text.lower() and "null" not in text
