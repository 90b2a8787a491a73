"""The file sink's lines: one JSON document a line, each row as encode_row gives it, the rows no JSON
writer takes refused one by one (the rest written), an upserting sink's rows merged by key."""

import asyncio
import datetime as dt
import math
from pathlib import Path

import orjson
import pytest

from rtstream.model.errors import RowsRejected
from rtstream.model.window import Window
from rtstream.runtime.context import Context
from rtstream.sinks.file import FileSink, FileSinkConfig
from rtstream.sinks.rows import encode_row

START = 1_767_225_600_000


def _sink(tmp_path: Path, keys: list[str] | None = None) -> FileSink:
    sink = FileSink("out", FileSinkConfig(type="file", path=str(tmp_path / "out"), fsync=False),
                    Context("p", tmp_path / "state", key_fields=keys or []))
    asyncio.run(sink.start())
    return sink


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")


def test_every_row_is_one_line_as_encode_row_gives_it(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    rows = [{"a": i, "t": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "x": math.nan, "s": "é\n\"", "d": {"n": [1]}}
            for i in range(1000)]
    w = Window(START, START + 1000)
    asyncio.run(sink.write(w, rows))
    data = sink.file_for(w).read_bytes()
    assert data == b"".join(encode_row(r) + b"\n" for r in rows)  # type: ignore[operator]
    assert [orjson.loads(line)["a"] for line in data.splitlines()] == list(range(1000))
    assert orjson.loads(data.splitlines()[0])["x"] is None  # NaN written as null


def test_a_row_no_json_writer_takes_is_refused_and_the_rest_written_in_order(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    rows = [{"a": 1}, {"a": 2 ** 70}, {"a": 3}, {1: "non-string key"}, {"a": 5}]
    w = Window(START, START + 1000)
    with pytest.raises(RowsRejected) as info:
        asyncio.run(sink.write(w, rows))
    assert [r for batch, _ in info.value.rejected for r in batch] == [rows[1], rows[3]]
    assert all("cannot be encoded as JSON" in why for _, why in info.value.rejected)
    assert _lines(sink.file_for(w)) == [b'{"a":1}', b'{"a":3}', b'{"a":5}', b""]


def test_a_window_of_only_refused_rows_leaves_no_file(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    w = Window(START, START + 1000)
    with pytest.raises(RowsRejected):
        asyncio.run(sink.write(w, [{"a": 2 ** 70}]))
    assert not sink.file_for(w).exists()


def test_an_upserting_sink_merges_a_second_write_by_key(tmp_path: Path) -> None:
    sink = _sink(tmp_path, keys=["k"])
    w = Window(START, START + 1000)
    asyncio.run(sink.write(w, [{"k": "a", "n": 1}, {"k": "b", "n": 1}]))
    with pytest.raises(RowsRejected):
        asyncio.run(sink.write(w, [{"k": "b", "n": 2}, {"k": "c", "n": 2 ** 70}, {"k": "d", "n": 2}]))
    assert _lines(sink.file_for(w)) == [b'{"k":"a","n":1}', b'{"k":"b","n":2}', b'{"k":"d","n":2}', b""]
