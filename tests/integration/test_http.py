"""HTTP poll, HTTP ingest and the HTTP sink, each against real aiohttp peers on loopback."""

from __future__ import annotations

import gzip
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict

import orjson
from aiohttp import web

from rtstream.testing.peers.ports import free_port
from tests.data import BASE_MS, make_events
from tests.http_peers import ThreadedServer
from tests.reference import tumbling_truth
from tests.support import Daemon, read_jsonl, wait_until, window_files, write_config


def rows_of(directory):
    return {(r["window_start"], r["user_id"]): r for rows in window_files(directory).values() for r in rows}


def assert_truth(directory, events, size_s=300):
    got = rows_of(directory)
    truth = tumbling_truth(events, size_s, "user_id")
    assert set(got) == set(truth)
    for k, want in truth.items():
        assert got[k]["events"] == want["events"], k
        assert abs(got[k]["spent"] - want["spent"]) < 1e-6


def base_doc(tmp_path, source, sink=None, **window):
    return {
        "pipeline": {"name": "http", "flow": "src >> per_user >> out"},
        "window": {"size": "5m", "lateness": "1s", "idle_timeout": "1s", **window},
        "sources": {"src": source},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id",
                                "aggregates": {"events": "count()", "spent": "sum(amount)"}}},
        "sinks": {"out": sink or {"type": "file", "path": str(tmp_path / "out")}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms", "shutdown_grace": "10s"},
    }


# --- poll ---------------------------------------------------------------------------------------
class EventsApi:
    """Pages of events after a cursor; every third request fails with 503."""

    def __init__(self, events, page_size=250):
        self.events = list(events)
        self.page_size = page_size
        self.requests = 0
        self.sinces: list[str | None] = []
        self.served: dict[int, int] = defaultdict(int)
        self.lock = threading.Lock()

    def app(self):
        app = web.Application()
        app.router.add_get("/events", self.handle)
        return app

    async def handle(self, request):
        with self.lock:
            self.requests += 1
            if self.requests % 3 == 0:
                return web.Response(status=503, headers={"Retry-After": "0"})
            since = int(request.query.get("since", -1))
            page = int(request.query.get("page", 0))
            if page == 0:
                self.sinces.append(request.query.get("since"))
            newer = [e for e in self.events if e["seq"] > since]
            chunk = newer[page * self.page_size:(page + 1) * self.page_size]
            for e in chunk:
                self.served[e["seq"]] += 1
            more = len(newer) > (page + 1) * self.page_size
            nxt = f"/events?since={since}&page={page + 1}" if more else None
            return web.json_response({"data": {"items": chunk}, "next": nxt})


def test_poll_paginates_resumes_by_cursor_and_survives_a_flaky_api(tmp_path):
    first = make_events(2000, span_s=1200, seed=31)
    for i, e in enumerate(first):
        e["seq"] = i
    api = EventsApi(first)
    with ThreadedServer(api.app) as server:
        source = {"type": "http_poll", "url": f"{server.url}/events", "interval": "1s", "records": "/data/items",
                  "next": "/next", "cursor_field": "seq", "cursor_param": "since", "retry_delay": "20ms"}
        cfg = write_config(tmp_path / "poll.toml", base_doc(tmp_path, source, size="10s"))
        with Daemon(cfg, tmp_path) as d:
            wait_until(lambda: len(rows_of(tmp_path / "out")) == len(tumbling_truth(first, 10, "user_id")), 60,
                       what="the first batch of windows")
            d.signal(signal.SIGTERM)
            assert d.wait(30) == 0, d.stderr
        assert "HTTP 503" in d.stderr  # it met the flaky responses and went on
        # the windows of the first run closed on the wall clock (the stream went quiet), so what comes
        # after the restart must be newer than that clock, or it would rightly be late
        soon = int(time.time() * 1000) + 2000
        later = [dict(e, ts=soon + i * 10, seq=len(first) + i)
                 for i, e in enumerate(make_events(1000, span_s=600, seed=32))]
        api.events.extend(later)
        before = len(api.sinces)
        with Daemon(cfg, tmp_path) as d:
            wait_until(lambda: len(rows_of(tmp_path / "out")) == len(tumbling_truth(first + later, 10, "user_id")),
                       90, interval=0.5, what="the later windows")
            d.signal(signal.SIGTERM)
            assert d.wait(30) == 0, d.stderr
        assert api.sinces[before] == str(len(first) - 1)  # the restart asked only for what is new
    assert all(n == 1 for n in api.served.values()) and len(api.served) == 3000
    assert_truth(tmp_path / "out", first + later, size_s=10)
    assert read_jsonl(tmp_path / "dead.jsonl") == []


# --- ingest -------------------------------------------------------------------------------------
def post(url, body, headers=None, timeout=10):
    req = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, orjson.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, orjson.loads(err.read() or b"{}"), dict(err.headers)


def ingest_doc(tmp_path, port, **source):
    src = {"type": "http_ingest", "listen": f"127.0.0.1:{port}", "path": "/ingest", "token": "s3cret", **source}
    return base_doc(tmp_path, src)


AUTH = {"Authorization": "Bearer s3cret"}


def test_ingest_answers_401_413_400_and_202(tmp_path):
    port = free_port()
    cfg = write_config(tmp_path / "in.toml", ingest_doc(tmp_path, port, max_body=4096))
    url = f"http://127.0.0.1:{port}/ingest"
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: "accepting POST" in d.stderr, 30, what="the ingest server")
        assert post(url, b'{"a": 1}')[0] == 401
        assert post(url, b'{"a": 1}', {"Authorization": "Bearer nope"})[0] == 401
        assert post(url, b"x" * 5000, AUTH)[0] == 413
        status, doc, _ = post(url, b'{"user_id": "a", "ts": 1}\n{"user_id": "b", "ts": 2}\n{oops\n',
                              {**AUTH, "Content-Type": "application/x-ndjson"})
        assert status == 400 and doc["error"].startswith("line 3: invalid JSON") and doc["accepted"] == 0
        assert post(url, b'[{"a": 1}, 5]', AUTH)[1]["error"] == "item 2: expected a JSON object, got a number"
        assert post(url, b'{"user_id": "a", "ts": 1767225600000, "amount": 1}', AUTH)[:2] == (202, {"accepted": 1})
        many = b"\n".join(orjson.dumps({"user_id": "b", "ts": BASE_MS, "amount": 2}) for _ in range(3))
        assert post(url, many, {**AUTH, "Content-Type": "application/x-ndjson"})[1] == {"accepted": 3}
        zipped = gzip.compress(orjson.dumps([{"user_id": "c", "ts": BASE_MS, "amount": 3}] * 2))
        assert post(url, zipped, {**AUTH, "Content-Encoding": "gzip", "Content-Type": "application/json"})[1] == {
            "accepted": 2}
        wait_until(lambda: rows_of(tmp_path / "out"), 30, what="the window to close")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
    got = {k[1]: r["events"] for k, r in rows_of(tmp_path / "out").items()}
    assert got == {"a": 1, "b": 3, "c": 2}


def test_sigkill_after_202_loses_nothing(tmp_path):
    port = free_port()
    cfg = write_config(tmp_path / "in.toml", ingest_doc(tmp_path, port))
    url = f"http://127.0.0.1:{port}/ingest"
    events = make_events(3000, span_s=1500, seed=41)
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: "accepting POST" in d.stderr, 30, what="the ingest server")
        for i in range(0, len(events), 300):
            body = b"\n".join(orjson.dumps(e) for e in events[i:i + 300])
            assert post(url, body, {**AUTH, "Content-Type": "application/x-ndjson"})[0] == 202
        d.kill()  # right after the last 202
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: len(rows_of(tmp_path / "out")) == len(tumbling_truth(events, 300, "user_id")), 60,
                   what="every accepted record in the sink")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
    assert_truth(tmp_path / "out", events)


def test_full_spool_answers_503_with_retry_after(tmp_path):
    port = free_port()
    doc = ingest_doc(tmp_path, port, max_spool=2048)
    doc["window"]["idle_timeout"] = "1h"  # nothing closes, so nothing is committed and the spool fills
    cfg = write_config(tmp_path / "in.toml", doc)
    url = f"http://127.0.0.1:{port}/ingest"
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: "accepting POST" in d.stderr, 30, what="the ingest server")
        body = orjson.dumps([{"user_id": "u", "ts": BASE_MS, "amount": 1}] * 20)
        statuses = [post(url, body, AUTH) for _ in range(6)]
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
    assert statuses[0][0] == 202
    assert statuses[-1][0] == 503 and statuses[-1][2].get("Retry-After") == "1"


# --- sink ---------------------------------------------------------------------------------------
class FlakyReceiver:
    """Fails every other request with 503; refuses (400) any batch holding user 'poison'."""

    def __init__(self):
        self.requests = 0
        self.by_key: dict[str, list] = {}
        self.lock = threading.Lock()

    def app(self):
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        return app

    async def handle(self, request):
        rows = await request.json()
        with self.lock:
            self.requests += 1
            if self.requests % 2 == 0:
                return web.Response(status=503)
            if any(r.get("user_id") == "poison" for r in rows):
                return web.Response(status=400, text="poison is not welcome here")
            self.by_key[request.headers["Idempotency-Key"]] = rows
        return web.Response(status=204)


def test_http_sink_delivers_everything_once_per_key_and_dead_letters_a_400(tmp_path, events):
    events = [{"user_id": "poison", "ts": BASE_MS + 1, "amount": 1.0}] + events
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    receiver = FlakyReceiver()
    with ThreadedServer(receiver.app) as server:
        sink = {"type": "http", "url": f"{server.url}/hook", "batch_size": 7, "retry_delay": "10ms",
                "max_retries": 3}
        doc = base_doc(tmp_path, {"type": "file", "path": str(src)}, sink)
        cfg = write_config(tmp_path / "sink.toml", doc)
        with Daemon(cfg, tmp_path) as d:
            assert d.wait(60) == 0, d.stderr
    delivered = [r for rows in receiver.by_key.values() for r in rows]
    truth = tumbling_truth([e for e in events if e["user_id"] != "poison"], 300, "user_id")
    poisoned_batch = [r for r in read_jsonl(tmp_path / "dead.jsonl")]
    assert poisoned_batch and all(d["reason"] == "sink_rejected" for d in poisoned_batch)
    assert "HTTP 400: poison is not welcome here" in poisoned_batch[0]["detail"]
    assert any(d["value"]["user_id"] == "poison" for d in poisoned_batch)
    # every row exactly once: delivered or (with its batch) dead-lettered
    seen = {(r["window_start"], r["user_id"]) for r in delivered} | {
        (d["value"]["window_start"], d["value"]["user_id"]) for d in poisoned_batch}
    assert seen == set(truth) | {("2026-01-01T00:00:00Z", "poison")}
    assert len(delivered) + len(poisoned_batch) == len(seen)
