"""The s3 sink's pure parts: object names, prefix templates, config checks, secrets, and the bytes of
a window as Parquet or JSON lines."""

from __future__ import annotations

import gzip
import io

import pytest

from rtstream.config.load import load_settings
from rtstream.model.errors import ConfigError
from rtstream.model.window import Window
from rtstream.sinks.parquet_rows import ndjson_bytes, parquet_bytes
from rtstream.sinks.s3 import render_prefix
from rtstream.support.secrets import secrets_of

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

W = Window(1_767_225_600_000, 1_767_225_900_000)  # 2026-01-01T00:00:00Z .. 00:05


def test_prefix_templates_use_the_window_bounds_in_utc() -> None:
    assert render_prefix("orders/dt={window_start:%Y-%m-%d}/hour={window_start:%H}/", W) == \
        "orders/dt=2026-01-01/hour=00/"
    assert render_prefix("{window_start}/{window_end:%H%M}/", W) == "2026-01-01T00:00:00Z/0005/"
    assert render_prefix("plain/%Y/", W) == "plain/%Y/"  # only placeholders are formatted


def _settings(tmp_path, **sink):
    doc = {"pipeline": {"name": "p", "flow": "src >> lake"},
           "window": {"size": "5m", "time": "event", "time_field": "ts"},
           "sources": {"src": {"type": "file", "path": str(tmp_path / "in.jsonl")}},
           "sinks": {"lake": {"type": "s3", "bucket": "lake", **sink}},
           "daemon": {"state_dir": str(tmp_path / "state")}}
    return load_settings(doc=doc, env={})


def test_credentials_are_secrets(tmp_path) -> None:
    settings = _settings(tmp_path, access_key_id="AKIAEXAMPLEKEY01", secret_access_key="wJalrXUtnFEMI/K7MDENG",
                         session_token="FwoGZXIvYXdzEXAMPLE")
    found = secrets_of(settings)
    assert {"AKIAEXAMPLEKEY01", "wJalrXUtnFEMI/K7MDENG", "FwoGZXIvYXdzEXAMPLE"} <= set(found)


@pytest.mark.parametrize("sink, problem", [
    ({"prefix": "x/{hour}/"}, "sinks.lake.prefix: unknown placeholder {hour}"),
    ({"prefix": "x/{window_start:%H/"}, "sinks.lake.prefix: unbalanced { or }"),
    ({"prefix": "/x/"}, "sinks.lake.prefix: an object key does not start with '/'"),
    ({"access_key_id": "AKIAEXAMPLEKEY01"}, "sinks.lake: access_key_id and secret_access_key go together"),
    ({"format": "ndjson", "compression": "snappy"}, "sinks.lake: compression = 'snappy' is for parquet"),
    ({"part_size": 1024}, "sinks.lake.part_size: Input should be greater than or equal to 5242880"),
    ({"format": "csv"}, "sinks.lake.format:"),
    ({"where": "a >"}, "sinks.lake.where: expected a field or a value, found the end of the expression at column 4"),
])
def test_config_problems(tmp_path, sink, problem) -> None:
    with pytest.raises(ConfigError) as err:
        _settings(tmp_path, **sink)
    assert any(f"{k}: {r}".startswith(problem) for k, r in err.value.problems), err.value.problems


def rows():
    return [{"window_start": W.start_iso, "window_end": W.end_iso, "user": f"u{i}", "n": i, "x": i / 2 if i % 2 else i,
             "tags": {"a": i}, "maybe": None} for i in range(5)]


def test_parquet_columns_are_typed_from_the_rows_and_the_bytes_depend_only_on_them() -> None:
    body, kept, rejected = parquet_bytes(rows(), W, "snappy", {"rtstream.pipeline": "p"})
    assert (kept, rejected) == (5, [])
    table = pq.read_table(io.BytesIO(body))
    assert [(f.name, str(f.type)) for f in table.schema] == [
        ("window_start", "timestamp[ms, tz=UTC]"), ("window_end", "timestamp[ms, tz=UTC]"), ("user", "string"),
        ("n", "int64"), ("x", "double"), ("tags", "struct<a: int64>"), ("maybe", "null")]
    assert table.column("x").to_pylist() == [0, 0.5, 2, 1.5, 4]
    assert parquet_bytes(rows(), W, "snappy", {"rtstream.pipeline": "p"})[0] == body


def test_rows_parquet_cannot_hold_are_rejected_and_the_rest_written() -> None:
    bad = rows()
    bad[1]["n"] = 2**70
    bad[2]["user"] = 7
    bad[3]["user"] = "\ud800"  # not valid UTF-8
    bad[4][5] = "a field name that is a number"
    body, kept, rejected = parquet_bytes(bad, W, "zstd", {})
    assert kept == 1
    assert [r[0][0] for r in rejected] == bad[1:]
    assert [why.split(":")[0] for _, why in rejected] == ["field 'n'", "field 'user'", "field 'user'",
                                                          "field name 5 is not a string"]
    assert pq.read_table(io.BytesIO(body)).column("user").to_pylist() == ["u0"]


def test_ndjson_gzip_is_deterministic_and_refuses_what_json_cannot_hold() -> None:
    bad = rows()
    bad[0]["n"] = 2**70
    body, kept, rejected = ndjson_bytes(bad, gzipped=True)
    assert kept == 4 and len(rejected) == 1 and rejected[0][0] == [bad[0]]
    assert ndjson_bytes(bad, gzipped=True)[0] == body
    assert len(gzip.decompress(body).splitlines()) == 4
