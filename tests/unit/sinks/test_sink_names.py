"""File-sink names for session keys: safe, bounded and one per key, whatever the key."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rtstream.sinks.file import key_name
from rtstream.sinks.rows import encodable_rows

KEYS = st.one_of(st.text(max_size=300), st.integers(), st.floats(allow_nan=False), st.booleans(),
                 st.text(alphabet="./\\\x00~_-aA", max_size=12))


def assert_safe(name: str) -> None:
    raw = name.encode("utf-8")
    assert 0 < len(raw) <= 100  # with the window start and ".jsonl", far below 255 bytes
    assert "/" not in name and "\x00" not in name and "\\" not in name
    assert name.isascii() and name.isprintable()


@settings(max_examples=500, deadline=None)
@given(st.lists(KEYS, min_size=2, max_size=8, unique_by=lambda k: (type(k), k)))
def test_any_keys_get_safe_and_distinct_names(keys):
    names = [key_name(k) for k in keys]
    for name in names:
        assert_safe(name)
    assert len(set(names)) == len(keys)


def test_the_hard_cases():
    cases = ["a/b", "a_b", "..", ".", "a/../../../x", "x" * 5000, "x" * 5001, "a\x00b", "a\udcffb", "", "~",
             "a~b", 5, "5", 5.0, True, "True", None, "é", "e\u0301"]
    names = [key_name(k) for k in cases]
    for name in names:
        assert_safe(name)
    assert len(set(names)) == len(cases)
    assert key_name("u42") == "u42" and key_name("a" * 64) == "a" * 64
    assert key_name("a" * 65).startswith("a" * 64 + "~")


def test_rows_no_json_writer_takes_are_picked_out():
    deep: object = 1
    for _ in range(254):
        deep = [deep]
    rows = [{"n": 1}, {"n": 2**64}, {"n": deep}, {1: "int key"}, {"n": float("nan")}, {"n": object()}]
    good, bad = encodable_rows(rows)
    assert good == [rows[0], rows[4], rows[5]]  # NaN is written as null, an object as its str
    assert [r for batch, _ in bad for r in batch] == rows[1:4]
    assert [why for _, why in bad] == ["row cannot be encoded as JSON: Integer exceeds 64-bit range",
                                       "row cannot be encoded as JSON: Recursion limit reached",
                                       "row cannot be encoded as JSON: Dict key must be str"]
