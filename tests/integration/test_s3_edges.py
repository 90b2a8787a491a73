"""Rows Parquet cannot hold as inferred (issue #24, cases 5 and 6), against moto on loopback: an empty
object `{}` (top level or nested) and lists nested 50 deep. Every object the sink writes must read
back with pyarrow, hold every row's values as they were, and take a later merge of the same window.
"""

from __future__ import annotations

import io
import signal
from typing import Any

import orjson
import pytest

from tests.data import BASE_MS, write_lines
from tests.integration.test_s3 import body, config, new_bucket, objects
from tests.support import Daemon, read_jsonl

pq = pytest.importorskip("pyarrow.parquet")


def nested(depth: int, leaf: Any = 1) -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def _rows(table_body: bytes) -> list[dict[str, Any]]:
    from rtstream.sinks.parquet_rows import rows_from

    pq.read_table(io.BytesIO(table_body))  # pyarrow itself reads it: the point of the test
    return rows_from(table_body, "parquet", False)


def test_empty_objects_and_deep_lists_are_written_readable_and_lossless(tmp_path, s3):
    bucket = new_bucket(s3)
    items: list[dict[str, Any]] = []
    for i in range(40):
        item: dict[str, Any] = {"ts": BASE_MS + i * 15_000, "id": i, "attrs": {"n": i}, "deep": [[i]]}
        if i % 10 == 3:
            item["empty"] = {}  # top level: typed struct<>, which the Parquet writer refuses
        if i % 10 == 5:
            item["inner"] = {"a": {}}  # nested
        if i % 10 == 7:
            item["tree"] = nested(50, i)  # typed as lists, too deep for pyarrow's reader
        if i % 10 == 9:
            item["deep"] = nested(3, i)  # lists of another depth than the column's others
        items.append(item)
    lines = [orjson.dumps(x) for x in items]
    # one more row nested beyond what JSON text (orjson) holds: it must be dead-lettered, alone
    lines.append(b'{"ts": %d, "id": 99, "deep": %s1%s}' % (BASE_MS + 1000, b"[" * 300, b"]" * 300))
    write_lines(tmp_path / "in.jsonl", lines)
    sinks = {"lake": s3.sink_config(bucket, prefix="raw/", format="parquet")}
    cfg = config(tmp_path, "st", "events >> lake", sinks)
    extra = ("--set", "defaults.retry_delay=100ms", "--set", "defaults.max_retry_delay=200ms")
    with Daemon(cfg, tmp_path, *extra) as d:
        try:
            code = d.wait(60)
        except Exception:  # the unfixed sink retries the window for ever: say so, then stop it
            d.signal(signal.SIGTERM)
            d.wait(30)
            raise AssertionError(f"the run did not end: {d.stderr[-2000:]}") from None
    assert code == 0, d.stderr[-2000:]
    assert "failed on window" not in d.stderr, d.stderr[-2000:]
    got: dict[int, dict[str, Any]] = {}
    keys = sorted(objects(s3, bucket))
    assert len(keys) == 2  # 40 records 15 s apart: two 5-minute windows
    for key in keys:
        for row in _rows(body(s3, bucket, key)):
            got[row["id"]] = row
    assert sorted(got) == list(range(40))
    for item in items:
        row = got[item["id"]]
        for field in ("attrs", "deep", "empty", "inner", "tree"):
            assert row[field] == item.get(field), (item["id"], field)
    dead = read_jsonl(tmp_path / "st-dead.jsonl")
    assert [x["reason"] for x in dead] == ["sink_rejected"]  # its value is an excerpt: too deep to keep whole
    assert '"id":99,' in dead[0]["value"] and "field 'deep'" in dead[0]["detail"]


async def test_a_window_merged_into_an_object_with_deep_lists_and_empty_objects_reads_back(tmp_path, s3):
    """Case 6: the next write of a window (replay, backfill, a second worker) merges with what is
    there; that must work whichever way each part was typed, and the result must read back."""
    from rtstream.model.window import Window
    from rtstream.runtime.context import Context
    from rtstream.sinks.s3 import S3Sink, S3SinkConfig

    bucket = new_bucket(s3)
    context = Context(pipeline="p", state_dir=tmp_path, key_fields=["user_id"])
    sink = S3Sink("lake", S3SinkConfig.model_validate(s3.sink_config(bucket, prefix="m/")), context)
    await sink.start()
    w = Window(BASE_MS, BASE_MS + 300_000)
    key = sink.object_key(w)

    def row(user: str, **fields: Any) -> dict[str, Any]:
        return {"window_start": w.start_iso, "window_end": w.end_iso, "user_id": user, **fields}

    try:
        await sink.write(w, [row("a", deep=nested(50, 1), empty={}), row("b", deep=[[2]])])
        await sink.write(w, [row("c", deep=[[3]])])  # typed alone, plain lists: merged, JSON text again
        await sink.write(w, [row("b", deep=nested(50, 5))])  # b again, newer
        got = {r["user_id"]: (r["deep"], r["empty"]) for r in _rows(body(s3, bucket, key))}
        assert got == {"a": (nested(50, 1), {}), "b": (nested(50, 5), None), "c": ([[3]], None)}
        await sink.write(w, [row("a", deep=[[1]])])  # a replaced: `empty` is gone, `deep` still needs text
        data = body(s3, bucket, key)
        assert pq.read_table(io.BytesIO(data)).schema.field("deep").metadata == {b"rtstream.json": b"1"}
        assert {r["user_id"]: r["deep"] for r in _rows(data)} == {"a": [[1]], "b": nested(50, 5), "c": [[3]]}
        await sink.write(w, [row("b", deep=[[5]])])  # b replaced too: plain lists again
        table = pq.read_table(io.BytesIO(body(s3, bucket, key)))
        assert {r["user_id"]: r["deep"] for r in table.to_pylist()} == {"a": [[1]], "b": [[5]], "c": [[3]]}
        assert table.schema.field("deep").metadata is None
    finally:
        await sink.close()


def test_parquet_schema_depth_is_checked_at_the_readers_limit():
    """The boundary itself: 49 nested lists stay lists (pyarrow reads 100 schema levels), 50 become
    JSON text; each object reads back."""
    from rtstream.model.window import Window
    from rtstream.sinks.parquet_rows import parquet_bytes

    w = Window(BASE_MS, BASE_MS + 300_000)
    for depth, as_text in ((49, False), (50, True)):
        data, kept, rejected = parquet_bytes([{"v": nested(depth)}], w, "snappy", {})
        table = pq.read_table(io.BytesIO(data))
        assert (kept, rejected) == (1, [])
        assert (str(table.schema.field("v").type) == "string") is as_text
        assert _rows(data) == [{"v": nested(depth)}]
