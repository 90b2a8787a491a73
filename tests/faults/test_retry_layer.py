"""One retry layer: the sink's policy. `retries = 1` means two attempts in all, one request each;
after the second the sink is halted and /readyz names it at once; a Retry-After is what the policy
waits."""

from __future__ import annotations

import signal
import threading
import time
import urllib.error
import urllib.request

import orjson
from aiohttp import web

from rtstream.testing.peers.ports import free_port
from tests.data import make_events, write_lines
from tests.http_peers import ThreadedServer
from tests.support import Daemon, wait_until, write_config


class Receiver:
    """Answers each request by `answer(n)` -> (status, headers); keeps the arrival time of each."""

    def __init__(self, answer):
        self.answer = answer
        self.times: list[float] = []
        self.rows: list[dict] = []
        self.lock = threading.Lock()

    def app(self):
        app = web.Application()

        async def hook(request):
            rows = await request.json()
            with self.lock:
                self.times.append(time.monotonic())
                status, headers = self.answer(len(self.times))
                if status < 300:
                    self.rows += rows
            return web.Response(status=status, headers=headers)

        app.router.add_post("/hook", hook)
        return app

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.times)


def config(tmp_path, url, admin_port, **policy):
    write_lines(tmp_path / "in.jsonl", make_events(200, span_s=60, seed=161, users=5))
    doc = {
        "pipeline": {"name": "retry", "flow": "events >> per_user >> hook"},
        "window": {"size": "1m", "lateness": "1s"},
        "sources": {"events": {"type": "file", "path": str(tmp_path / "in.jsonl"), "follow": True,
                               "poll_interval": "50ms"}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}}},
        "sinks": {"hook": {"type": "http", "url": url, "batch_size": 1000, "request_timeout": "2s",
                           "max_retries": 5, **policy}},  # max_retries: an old config's key, now ignored
        "admin": {"listen": f"127.0.0.1:{admin_port}"},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "shutdown_grace": "3s"},
    }
    return write_config(tmp_path / "r.toml", doc)


def readyz(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, orjson.loads(err.read())
    except OSError:
        return None, None


def halted_at(port):
    """Poll /readyz until it names the sink as halted; the time it first did."""
    def check():
        status, doc = readyz(port)
        if status == 503 and "hook" in doc["problems"]:
            return time.monotonic(), doc["problems"]["hook"]
        return None
    return wait_until(check, 30, interval=0.02, what="/readyz to name the halted sink")


def test_a_receiver_answering_500_halts_the_sink_after_exactly_retries_plus_one_requests(tmp_path):
    receiver = Receiver(lambda n: (500, {}))
    admin = free_port()
    with ThreadedServer(receiver.app) as server:
        cfg = config(tmp_path, f"{server.url}/hook", admin, retries=1, retry_delay="2s", max_retry_delay="10s")
        # the closing window is the only one, so each attempt is one request
        write_lines(tmp_path / "in.jsonl", [{"user_id": "closer", "ts": 1_767_225_600_000 + 3_600_000,
                                             "amount": 0}], mode="ab")
        with Daemon(cfg, tmp_path) as d:
            wait_until(lambda: receiver.count >= 1, 30, what="the first attempt")
            assert readyz(admin)[0] == 200  # one failed attempt is not a halt
            at, why = halted_at(admin)
            assert receiver.count == 2, receiver.count  # halted after exactly retries + 1 attempts
            first, second = receiver.times[:2]
            assert 1.5 <= second - first <= 2.6  # retry_delay 2s +-20%: no retries inside the attempt
            assert 0 <= at - second < 1.0, at - second  # /readyz says so at once
            assert why.startswith("halted, retrying: SinkError: hook: ") and "HTTP 500" in why
            assert "max_retries is deprecated and ignored" in d.stderr
            stopping = time.monotonic()
            d.signal(signal.SIGTERM)
            code = d.wait(30)
            stopped_in = time.monotonic() - stopping
    assert code == 0, d.stderr[-3000:]
    assert stopped_in < 3 + 3, stopped_in  # shutdown_grace 3s, whatever the halted sink does
    print(f"\nFIGURES retries=1, receiver 500: halted {at - first:.2f}s after the first request, "
          f"{at - second:.3f}s after the 2nd; SIGTERM to exit {stopped_in:.1f}s (grace 3s)")


def test_a_refused_connection_halts_the_sink_after_two_attempts_within_seconds(tmp_path):
    admin = free_port()
    dead_port = free_port()  # nothing listens there
    cfg = config(tmp_path, f"http://127.0.0.1:{dead_port}/hook", admin, retries=1, retry_delay="1s",
                 max_retry_delay="5s")
    write_lines(tmp_path / "in.jsonl", [{"user_id": "closer", "ts": 1_767_225_600_000 + 3_600_000, "amount": 0}],
                mode="ab")
    began = time.monotonic()
    with Daemon(cfg, tmp_path) as d:
        at, why = halted_at(admin)
        failures = [line for line in d.stderr.splitlines() if "sink hook failed on window" in line]
        assert len(failures) == 2 and "(attempt 1, next in" in failures[0], failures
        assert "(attempt 2, next in" in failures[1] and ", halted)" in failures[1]
        assert "ClientConnectorError" in why
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
    assert at - began < 10, at - began  # start-up, one attempt, ~1s, the second attempt: halted
    print(f"\nFIGURES retries=1, connection refused: halted {at - began:.1f}s after the daemon was started")


def test_429_with_retry_after_is_what_the_policy_waits_capped_by_max_retry_delay(tmp_path):
    receiver = Receiver(lambda n: (429, {"Retry-After": "3"}) if n <= 2 else (204, {}))
    admin = free_port()
    with ThreadedServer(receiver.app) as server:
        # the backoff alone would retry after 20ms; the receiver asks for 3s twice, and max_retry_delay
        # (10s) is above that, so the policy waits 3s both times
        cfg = config(tmp_path, f"{server.url}/hook", admin, retries=5, retry_delay="20ms", max_retry_delay="10s")
        write_lines(tmp_path / "in.jsonl", [{"user_id": "closer", "ts": 1_767_225_600_000 + 3_600_000,
                                             "amount": 0}], mode="ab")
        with Daemon(cfg, tmp_path) as d:
            wait_until(lambda: receiver.rows, 30, what="the window delivered after the waits")
            d.signal(signal.SIGTERM)
            assert d.wait(30) == 0
    t = receiver.times
    assert len(t) == 3
    assert 2.9 <= t[1] - t[0] <= 3.8 and 2.9 <= t[2] - t[1] <= 3.8, [t[1] - t[0], t[2] - t[1]]
    assert sum(r["n"] for r in receiver.rows) == 200
    assert "Retry-After 3s" in d.stderr


def test_retry_after_longer_than_max_retry_delay_is_capped(tmp_path):
    receiver = Receiver(lambda n: (503, {"Retry-After": "60"}) if n == 1 else (204, {}))
    admin = free_port()
    with ThreadedServer(receiver.app) as server:
        cfg = config(tmp_path, f"{server.url}/hook", admin, retries=2, retry_delay="20ms", max_retry_delay="1s")
        write_lines(tmp_path / "in.jsonl", [{"user_id": "closer", "ts": 1_767_225_600_000 + 3_600_000,
                                             "amount": 0}], mode="ab")
        with Daemon(cfg, tmp_path) as d:
            wait_until(lambda: receiver.rows, 30, what="the window delivered after the capped wait")
            d.signal(signal.SIGTERM)
            assert d.wait(30) == 0
    t = receiver.times
    assert len(t) == 2 and 0.9 <= t[1] - t[0] <= 1.6, t
