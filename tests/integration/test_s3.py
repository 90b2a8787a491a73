"""The s3 sink against a real S3-compatible server (moto on loopback), through the real daemon.

W1-style aggregates in Parquet equal the reference object by object; a replay from a fresh state
leaves the same objects, byte for byte; a SIGKILL in the middle of a multipart upload leaves no
object, and the restart uploads it whole.
"""

from __future__ import annotations

import gzip
import io
import os
import time
import uuid
from datetime import UTC, datetime

import orjson
import pytest

from tests.data import BASE_MS, write_lines
from tests.reference import iso, tumbling_truth
from tests.support import Daemon, run_cli, wait_until, write_config

pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")

AGGREGATES = {"events": "count()", "spent": "sum(amount)", "biggest": "max(amount)"}
PREFIX = "orders/dt={window_start:%Y-%m-%d}/hour={window_start:%H}/"


def new_bucket(s3) -> str:
    name = f"lake-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=name)
    return name


def objects(s3, bucket: str) -> dict[str, dict]:
    out = {}
    for page in s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = obj
    return out


def body(s3, bucket: str, key: str) -> bytes:
    return s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def config(tmp_path, state: str, flow: str, sinks: dict, stages: dict | None = None, **window):
    doc = {
        "pipeline": {"name": "lake", "flow": flow},
        "window": {"size": "5m", "time": "event", "time_field": "ts", "lateness": "10s", **window},
        "sources": {"events": {"type": "file", "path": str(tmp_path / "in.jsonl")}},
        "stages": stages or {},
        "sinks": sinks,
        "dead_letter": {"path": str(tmp_path / f"{state}-dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / state), "log_format": "json"},
    }
    if not doc["stages"]:
        del doc["stages"]
    return write_config(tmp_path / f"{state}.toml", doc)


def test_aggregates_in_parquet_equal_the_reference_and_a_replay_leaves_the_same_objects(tmp_path, s3, events):
    bucket = new_bucket(s3)
    write_lines(tmp_path / "in.jsonl", events)
    stages = {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": AGGREGATES}}
    sinks = {"lake": s3.sink_config(bucket, prefix=PREFIX, format="parquet")}
    res = run_cli("run", "-c", str(config(tmp_path, "first", "events >> per_user >> lake", sinks, stages)))
    assert res.returncode == 0, res.stderr

    first = objects(s3, bucket)
    expected_keys = [f"orders/dt=2026-01-01/hour=00/{iso(BASE_MS + i * 300_000).replace(':', '-')}.parquet"
                     for i in range(6)]
    assert sorted(first) == expected_keys
    truth = tumbling_truth(events, 300, "user_id")
    got = {}
    for key in expected_keys:
        table = pq.read_table(io.BytesIO(body(s3, bucket, key)))
        assert table.schema.field("window_start").type == pa.timestamp("ms", tz="UTC")
        assert table.schema.field("window_end").type == pa.timestamp("ms", tz="UTC")
        assert table.schema.field("events").type == pa.int64()
        assert table.schema.field("spent").type == pa.float64()
        meta_start = table.schema.metadata[b"rtstream.window_start"].decode()
        assert key.endswith(meta_start.replace(":", "-") + ".parquet")  # the window the object holds
        for row in table.to_pylist():
            start = row["window_start"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            assert row["window_end"] - row["window_start"] == (datetime(2026, 1, 1, 0, 5) - datetime(2026, 1, 1))
            assert key.endswith(start.replace(":", "-") + ".parquet")
            got[(start, row["user_id"])] = row
    assert set(got) == set(truth)
    for k, want in truth.items():
        assert got[k]["events"] == want["events"], k
        assert got[k]["spent"] == pytest.approx(want["spent"]), k
        assert got[k]["biggest"] == want["biggest"], k

    # a replay from a fresh state rewrites the same objects, whole and identical
    contents = {k: body(s3, bucket, k) for k in first}
    time.sleep(1.1)  # LastModified has one-second resolution
    res = run_cli("run", "-c", str(config(tmp_path, "replay", "events >> per_user >> lake", sinks, stages)))
    assert res.returncode == 0, res.stderr
    again = objects(s3, bucket)
    assert sorted(again) == expected_keys
    assert all(again[k]["LastModified"] > first[k]["LastModified"] for k in again)  # written again
    assert {k: body(s3, bucket, k) for k in again} == contents
    assert all(again[k]["ETag"] == first[k]["ETag"] for k in again)


def test_ndjson_gzip_routing_and_rows_parquet_cannot_hold(tmp_path, s3):
    bucket = new_bucket(s3)
    items = [{"ts": BASE_MS + i * 1000, "user_id": f"u{i % 3}", "amount": i, "note": "x"} for i in range(30)]
    items[5]["note"] = 12  # a number in a column of strings
    lines = [orjson.dumps(item) for item in items]
    lines[4] = lines[4].replace(b'"amount":4', b'"amount":%d' % 2**70)  # an int Parquet cannot hold
    write_lines(tmp_path / "in.jsonl", lines)
    sinks = {
        "raw": s3.sink_config(bucket, prefix="raw/", format="parquet"),
        "u0": s3.sink_config(bucket, prefix="u0/{window_start}/", format="ndjson", compression="gzip",
                             where="user_id = 'u0' and amount >= 10"),
    }
    res = run_cli("run", "-c", str(config(tmp_path, "st", "events >> [raw, u0]", sinks)))
    assert res.returncode == 0, res.stderr
    keys = sorted(objects(s3, bucket))
    assert keys == ["raw/2026-01-01T00-00-00Z.parquet", "u0/2026-01-01T00:00:00Z/2026-01-01T00-00-00Z.ndjson.gz"]
    table = pq.read_table(io.BytesIO(body(s3, bucket, keys[0])))
    assert table.num_rows == 28 and sorted(table.column("amount").to_pylist()) == [i for i in range(30) if i not in (4, 5)]
    assert table.schema.field("note").type == pa.string()
    dead = (tmp_path / "st-dead.jsonl").read_text().splitlines()
    assert len(dead) == 2 and all('"sink_rejected"' in d and '"raw"' in d for d in dead)
    assert any("field 'amount': Parquet cannot hold this int" in d for d in dead)
    assert any("field 'note': int value in a column of string" in d for d in dead)
    lines = [orjson.loads(x) for x in gzip.decompress(body(s3, bucket, keys[1])).splitlines()]
    assert sorted(r["amount"] for r in lines) == [i for i in range(10, 30) if i % 3 == 0]
    head = s3.client().head_object(Bucket=bucket, Key=keys[1])
    assert head["ContentType"] == "application/gzip" and head["Metadata"]["rtstream-rows"] == str(len(lines))


def test_validate_refuses_bad_prefixes_and_half_credentials(tmp_path, s3):
    sinks = {"a": {**s3.sink_config("lake", prefix="x/{hour}/")},
             "b": {**s3.sink_config("lake", prefix="x/{window_start:%H/"), "secret_access_key": None},
             "c": {**s3.sink_config("lake", format="ndjson", compression="zstd")}}
    del sinks["b"]["secret_access_key"]
    write_lines(tmp_path / "in.jsonl", [])
    res = run_cli("validate", "-c", str(config(tmp_path, "v", "events >> [a, b, c]", sinks)))
    assert res.returncode == 2
    out = res.stderr
    assert "sinks.a.prefix: unknown placeholder {hour}" in out
    assert "sinks.b.prefix: unbalanced { or }" in out
    assert "sinks.c: compression = 'zstd' is for parquet" in out
    assert s3.sink_config("lake")["secret_access_key"] not in out + res.stdout


def test_sigkill_in_the_middle_of_a_multipart_upload_leaves_no_object(tmp_path, s3):
    bucket = new_bucket(s3)
    n, size = 24_000, 2000  # one window of about 48 MB as JSON lines: ten 5 MiB parts, one at a time
    with open(tmp_path / "in.jsonl", "wb") as fh:
        for i in range(n):
            fh.write(orjson.dumps({"ts": BASE_MS + i * 10, "i": i, "blob": os.urandom(size // 2).hex()}) + b"\n")
    sinks = {"lake": s3.sink_config(bucket, prefix="big/", format="ndjson", part_size=5 * 1024 * 1024,
                                    upload_concurrency=1)}
    cfg = config(tmp_path, "kill", "events >> lake", sinks)
    key = f"big/{iso(BASE_MS).replace(':', '-')}.ndjson"
    client = s3.client()
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: client.list_multipart_uploads(Bucket=bucket).get("Uploads"), 60, interval=0.01,
                   what="a multipart upload to begin")
        d.kill()
    assert objects(s3, bucket) == {}  # nothing visible: the upload was never completed
    [upload] = client.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert upload["Key"] == key

    t0 = time.monotonic()
    res = run_cli("run", "-c", str(cfg))
    took = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    [(got_key, obj)] = objects(s3, bucket).items()
    assert got_key == key
    data = body(s3, bucket, key)
    rows = [orjson.loads(line) for line in data.splitlines()]
    assert sorted(r["i"] for r in rows) == list(range(n))
    assert obj["ETag"].endswith('-10"')  # a multipart object of ten parts
    print(f"\nrestart: {len(data) / 1e6:.1f} MB window written to moto in a run of {took:.1f}s")


def test_a_failing_store_gets_one_request_per_attempt(tmp_path):
    """The policy is the one retry layer: botocore makes one request per attempt, so `retries = 1`
    is two PUTs, then the rows go to the dead letters (`on_failure = "dead_letter"`)."""
    from aiohttp import web

    from tests.http_peers import ThreadedServer

    puts: list[str] = []

    def app():
        a = web.Application()

        async def head(request):
            return web.Response(status=200)

        async def put(request):
            await request.read()
            puts.append(request.path)
            return web.Response(status=500, text="<Error><Code>InternalError</Code><Message>down</Message></Error>",
                                content_type="application/xml")

        a.router.add_route("HEAD", "/lake", head)
        a.router.add_put("/lake/{key:.*}", put)
        return a

    write_lines(tmp_path / "in.jsonl", [{"ts": BASE_MS + i, "n": i} for i in range(5)])
    with ThreadedServer(app) as server:
        sinks = {"lake": {"type": "s3", "bucket": "lake", "endpoint_url": server.url, "region": "us-east-1",
                          "access_key_id": "k" * 16, "secret_access_key": "s" * 32, "format": "ndjson",
                          "retries": 1, "retry_delay": "0.1s", "on_failure": "dead_letter"}}
        res = run_cli("run", "-c", str(config(tmp_path, "fail", "events >> lake", sinks)))
    assert res.returncode == 0, res.stderr
    assert puts == ["/lake/2026-01-01T00-00-00Z.ndjson"] * 2
    dead = [orjson.loads(line) for line in (tmp_path / "fail-dead.jsonl").read_bytes().splitlines()]
    assert len(dead) == 5 and {d["reason"] for d in dead} == {"sink_failed"}
    assert "InternalError" in dead[0]["detail"]
    for place in (res.stderr.encode(), (tmp_path / "fail-dead.jsonl").read_bytes(),
                  (tmp_path / "fail" / "runs.db").read_bytes()):
        assert b"s" * 32 not in place and b"k" * 16 not in place  # the credentials are redacted everywhere


def test_parquet_without_pyarrow_is_refused_before_start_with_the_pip_command(tmp_path, s3):
    fake = tmp_path / "nopyarrow" / "pyarrow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('pyarrow is not installed here')\n")
    write_lines(tmp_path / "in.jsonl", [{"ts": BASE_MS, "n": 1}])
    sinks = {"lake": s3.sink_config(new_bucket(s3), format="parquet")}
    res = run_cli("run", "-c", str(config(tmp_path, "nopa", "events >> lake", sinks)),
                  env={"PYTHONPATH": str(tmp_path / "nopyarrow")})
    assert res.returncode == 2  # the config is refused as it loads (rtstream.config.extras), nothing started
    assert "  sinks.lake.format: format = \"parquet\" (the default) needs pyarrow" in res.stderr
    assert "pip install 'rtstream[parquet]'" in res.stderr


async def test_a_window_written_in_parts_keeps_every_part_and_a_stale_writer_merges_again(tmp_path, s3):
    from rtstream.model.errors import SinkError
    from rtstream.model.window import Window
    from rtstream.runtime.context import Context
    from rtstream.sinks.s3 import S3Sink, S3SinkConfig

    bucket = new_bucket(s3)
    context = Context(pipeline="p", state_dir=tmp_path, key_fields=["user_id"])
    sink = S3Sink("lake", S3SinkConfig.model_validate(s3.sink_config(bucket, prefix="m/")), context)
    await sink.start()
    w = Window(BASE_MS, BASE_MS + 300_000)
    key = sink.object_key(w)

    def row(user: str, n: int) -> dict:
        return {"window_start": w.start_iso, "window_end": w.end_iso, "user_id": user, "events": n}

    def stored() -> list[tuple[str, int]]:
        table = pq.read_table(io.BytesIO(body(s3, bucket, key)))
        return [(r["user_id"], r["events"]) for r in table.to_pylist()]

    try:
        await sink.write(w, [row("a", 1), row("b", 2)])
        await sink.write(w, [row("c", 3), row("b", 5)])  # another replica's part; b again, newer
        assert stored() == [("a", 1), ("b", 5), ("c", 3)]

        stale = await sink._existing(key)  # a writer reads the object ...
        await sink.write(w, [row("d", 4)])  # ... another one writes it meanwhile ...
        real = sink._existing

        async def stale_once(k):
            sink._existing = real
            return stale

        sink._existing = stale_once
        with pytest.raises(SinkError, match="changed while this window was merged"):
            await sink.write(w, [row("e", 5)])  # ... so the first one's conditional write fails
        assert stored() == [("a", 1), ("b", 5), ("c", 3), ("d", 4)]
        await sink.write(w, [row("e", 5)])  # and its retry merges again: nothing lost
        assert stored() == [("a", 1), ("b", 5), ("c", 3), ("d", 4), ("e", 5)]
    finally:
        await sink.close()


def test_two_workers_write_each_window_in_parts_and_every_object_holds_every_key(tmp_path, kafka, s3):
    """`[daemon] workers = 2` in one consumer group: each worker writes its partitions' users of the
    same window to the same object; the merge by key keeps both parts (a blind PUT would keep one)."""
    import asyncio

    from tests.data import make_events
    from tests.kafka_helpers import new_topics, produce

    bucket = new_bucket(s3)
    topic, _, group = new_topics(kafka.bootstrap, 4)
    events = make_events(12_000, span_s=3600, seed=23)
    asyncio.run(produce(kafka.bootstrap, topic, events))
    doc = {
        "pipeline": {"name": "lake", "flow": "events >> per_user >> lake"},
        "window": {"size": "5m", "lateness": "1s", "idle_timeout": "2s"},
        "sources": {"events": {"type": "kafka", "bootstrap_servers": kafka.bootstrap, "topics": [topic],
                               "group_id": group, "start": "earliest", "stop_at_end": True,
                               "consumer": {"session_timeout_ms": 6000, "heartbeat_interval_ms": 300,
                                            "fetch_max_wait_ms": 10}}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": AGGREGATES}},
        "sinks": {"lake": s3.sink_config(bucket, prefix=PREFIX, retry_delay="0.2s")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "200ms", "workers": 2,
                   "shutdown_grace": "10s"},
    }
    res = run_cli("run", "-c", str(write_config(tmp_path / "workers.toml", doc)), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "worker 1 started" in res.stderr
    truth = tumbling_truth(events, 300, "user_id")
    got = {}
    for key in objects(s3, bucket):
        for row in pq.read_table(io.BytesIO(body(s3, bucket, key))).to_pylist():
            got[(row["window_start"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), row["user_id"])] = row
    assert len(objects(s3, bucket)) == 12 and set(got) == set(truth)
    assert all(got[k]["events"] == t["events"] and got[k]["spent"] == pytest.approx(t["spent"])
               for k, t in truth.items())
    print(f"\nworkers: {res.stderr.count('changed while this window was merged')} conditional writes lost a race "
          "and merged again")
