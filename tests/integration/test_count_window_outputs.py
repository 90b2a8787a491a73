"""Count windows of one key that share their start (12 records of one second, size 5), through the
real daemon into S3 (moto) and an HTTP receiver that drops repeated Idempotency-Keys, as a
receiver is told to: each window is its own object and its own request, even when two windows
hold the same result, and a replay writes the same objects and sends the same keys."""

from __future__ import annotations

import uuid

import orjson
from aiohttp import web

from rtstream.model.window import iso_utc as iso
from tests.data import BASE_MS, write_lines
from tests.http_peers import ThreadedServer
from tests.support import read_jsonl, run_cli, write_config

VALUES = [1] * 10 + [2, 2]  # windows (5, 5), (5, 5), (2, 4): the first two hold the same result


class Receiver:
    """Keeps the first body of each Idempotency-Key and counts the requests."""

    def __init__(self) -> None:
        self.by_key: dict[str, list[dict]] = {}
        self.requests = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/w", self.take)
        return app

    async def take(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.by_key.setdefault(request.headers["Idempotency-Key"], orjson.loads(await request.read()))
        return web.json_response({"ok": True})


def test_count_windows_sharing_a_start_are_each_an_object_and_a_request(tmp_path, s3):
    write_lines(tmp_path / "in.jsonl", [{"user": "x", "ts": BASE_MS, "v": v} for v in VALUES])
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=bucket)
    receiver = Receiver()
    with ThreadedServer(receiver.app) as server:
        doc = {
            "pipeline": {"name": "counts", "flow": "ev >> per_user >> [lake, hook]"},
            "window": {"type": "count", "size": 5},
            "state": {"checkpoint_interval": "1s"},
            "sources": {"ev": {"type": "file", "path": str(tmp_path / "in.jsonl")}},
            "stages": {"per_user": {"type": "aggregate", "key": "user",
                                    "aggregates": {"n": "count()", "total": "sum(v)"}}},
            "sinks": {"lake": s3.sink_config(bucket, format="ndjson"),
                      "hook": {"type": "http", "url": f"{server.url}/w"}},
            "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
            "daemon": {"state_dir": str(tmp_path / "state")},
        }
        cfg = write_config(tmp_path / "c.toml", doc)
        seen = []
        for run in range(2):  # the second run replays every window (a fresh state dir)
            res = run_cli("run", "-c", str(cfg), timeout=120)
            assert res.returncode == 0, res.stderr[-3000:]
            assert not read_jsonl(tmp_path / "dead.jsonl")
            pages = s3.client().list_objects_v2(Bucket=bucket).get("Contents", [])
            keys = sorted(o["Key"] for o in pages)
            seen.append((keys, sorted(receiver.by_key), receiver.requests))
            (tmp_path / "state").rename(tmp_path / f"state-{run}")
    start = iso(BASE_MS).replace(":", "-")
    keys, ids, requests = seen[0]
    assert len(keys) == 3 and all(k.startswith(f"{start}.x.ev-0@") and k.endswith(".ndjson") for k in keys), keys
    rows = [orjson.loads(s3.client().get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys]
    assert sorted((r["n"], r["total"]) for r in rows) == [(2, 4), (5, 5), (5, 5)]
    assert all(k == f"{start}.x.{r['window_id'].replace('/', '-')}.ndjson" for k, r in zip(keys, rows, strict=True))
    assert (len(ids), requests) == (3, 3)  # three windows, three keys: the receiver kept each
    assert sorted((b[0]["n"], b[0]["total"]) for b in receiver.by_key.values()) == [(2, 4), (5, 5), (5, 5)]
    assert seen[1] == (keys, ids, 6)  # a replay: the same objects, the same keys (dropped as repeats)
