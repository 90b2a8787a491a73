"""Dead letters never fail and stay small, whatever the record held."""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
import pytest

from rtstream.engine.dead_letter import DETAIL_CHARS, EXCERPT_BYTES, DeadLetter, excerpt
from rtstream.runtime.dead_letter_file import DeadLetterFile

LINE_MAX = EXCERPT_BYTES + DETAIL_CHARS + 600  # the value, the detail and the fixed keys


def nested(depth: int, leaf: object = 1) -> object:
    value: object = leaf
    for i in range(depth):
        value = {"a": value} if i % 2 else [value]
    return value


class Odd:
    """Neither JSON nor printable: str() raises."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")


def letter(value: object, detail: str = "bad time") -> DeadLetter:
    return DeadLetter("no_time", detail, "events", 3, 1234, value=value)


def decoded(d: DeadLetter) -> dict:
    line = d.to_json()
    assert len(line) <= LINE_MAX, len(line)
    doc = orjson.loads(line)
    assert (doc["reason"], doc["source"], doc["partition"], doc["offset"]) == (d.reason, "events", 3, 1234)
    return doc


@pytest.mark.parametrize("depth", [253, 254, 255, 300, 5000])
def test_any_nesting_is_written_and_marked_cut(depth):
    doc = decoded(letter(nested(depth)))
    assert doc["value_truncated"] is True and isinstance(doc["value"], str)
    assert doc["value"][:2] in ("[{", '{"') and doc["value"].endswith(("]", "}"))
    assert '"…"' in doc["value"]  # where the nesting was cut


def test_a_50_mb_string_costs_a_few_kb():
    d = letter({"user_id": "u1", "ts": "never", "blob": "x" * 50_000_000}, detail="y" * 60_000_000)
    doc = decoded(d)  # the value is walked within its budget, never encoded whole
    assert doc["value_truncated"] is True and doc["value"].startswith('{"user_id":"u1","ts":"never","blob":"xxx')
    assert len(doc["value"].encode()) <= EXCERPT_BYTES
    assert len(doc["detail"]) == DETAIL_CHARS + 1 and doc["detail"].endswith("…")


def test_ints_beyond_64_bits_bytes_and_odd_objects():
    doc = decoded(letter({"n": 2**70, "huge": 2**100_000, "ok": 2**63}))
    assert doc["value_truncated"] is True
    assert orjson.loads(doc["value"]) == {"n": str(2**70), "huge": "<int of 100001 bits>", "ok": 2**63}
    assert decoded(letter(2**70))["value"] == f'"{2**70}"'

    raw = decoded(letter(b"\xff\xfe" + b"z" * 30_000_000))
    assert raw["value_truncated"] is True and raw["value"].startswith("\\xff\\xfez")
    small = decoded(letter(b'{"user_id": 1'))
    assert small["value"] == '{"user_id": 1' and "value_truncated" not in small

    odd = decoded(letter({"o": Odd(), "s": {1, 2}, "t": (1, "a"), 5: "int key", "u": "a\ud800b"}))
    assert odd["value"] == {"o": "<Odd>", "s": [1, 2], "t": [1, "a"], "5": "int key", "u": "a\\ud800b"}


def test_a_value_that_fits_is_stored_as_itself():
    value = {"user_id": "u1", "ts": "yesterday", "tags": ["a", "b"], "amount": 1.5, "ok": True, "none": None}
    doc = decoded(letter(value))
    assert doc["value"] == value and "value_truncated" not in doc
    assert excerpt({"a": [1, 2]}) == ({"a": [1, 2]}, False)


def test_many_keys_and_long_lists_are_cut_early():
    d = letter({"k": list(range(5_000_000)), **{f"f{i}": i for i in range(100_000)}})
    began = time.perf_counter()
    doc = decoded(d)
    assert time.perf_counter() - began < 0.05
    assert doc["value_truncated"] is True and doc["value"].startswith('{"k":[0,1,2,')


def test_the_file_and_its_log_line_stay_small(tmp_path, caplog):
    dl = DeadLetterFile(tmp_path / "dead.jsonl")
    letters = [letter({"blob": "x" * 10_000_000}, detail="bad time " + "y" * 10_000_000), letter(nested(400))]

    async def run() -> None:
        await dl.start()
        await dl.write(letters)
        await dl.close()

    with caplog.at_level(logging.WARNING, logger="rtstream.dead_letter"):
        asyncio.run(run())
    lines = (tmp_path / "dead.jsonl").read_bytes().splitlines()
    assert len(lines) == 2 and all(len(line) <= LINE_MAX for line in lines)
    assert [orjson.loads(line)["offset"] for line in lines] == [1234, 1234]
    (record,) = caplog.records
    assert len(record.getMessage()) < 500 and "2 record(s) dead-lettered {'no_time': 2}" in record.getMessage()


def test_the_examples_in_the_docstrings_hold():
    import doctest

    import rtstream.engine.dead_letter
    import rtstream.sinks.file

    for module in (rtstream.engine.dead_letter, rtstream.sinks.file):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_the_log_line_names_a_sink_rejected_rows_sink_and_window(tmp_path, caplog):
    """A row a window made has no record position: the line named it None/None@None."""
    dl = DeadLetterFile(tmp_path / "dead.jsonl")
    row = DeadLetter("sink_rejected", "int too big", stage="db", window=(0, 60_000), value={"n": 2**70})
    rec = DeadLetter("decode", "invalid JSON", source="s", partition=0, offset=7)

    async def run() -> None:
        await dl.start()
        await dl.write([row])
        await dl.write([rec])
        await dl.close()

    with caplog.at_level(logging.WARNING, logger="rtstream.dead_letter"):
        asyncio.run(run())
    assert "first: sink_rejected at db window 1970-01-01T00:00:00Z: int too big" in caplog.text
    assert "first: decode at s/0@7: invalid JSON" in caplog.text and "None" not in caplog.text
