"""HTTP ingest and the admin server against malformed and slow clients, on loopback: every bad
request gets a 4xx with a one-line reason, half-sent requests are dropped within the read timeouts
while real requests go on, connections beyond the cap are refused, and the log stays small."""

from __future__ import annotations

import selectors
import signal
import socket
import time
from pathlib import Path

import orjson
import pytest

from rtstream.connect.http_guard import SPARE_DESCRIPTORS
from rtstream.testing.peers.ports import free_port
from tests.data import BASE_MS
from tests.security.peers import get, post, raw_request
from tests.support import Daemon, small_tmpfs, wait_until, write_config

TOKEN = "ingest-t0ken"
ADMIN = "admin-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HEADER_TIMEOUT, BODY_TIMEOUT = 1.0, 2.0


def edge_doc(tmp_path: Path, ingest: int, admin: int, **source) -> dict:
    return {
        "pipeline": {"name": "edges", "flow": "ingest >> per_user >> out"},
        "window": {"size": "5m", "lateness": "1s", "idle_timeout": "1h"},
        "sources": {"ingest": {"type": "http_ingest", "listen": f"127.0.0.1:{ingest}", "token": TOKEN,
                               "header_timeout": f"{HEADER_TIMEOUT}s", "body_timeout": f"{BODY_TIMEOUT}s",
                               "keepalive_timeout": "2s", **source}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}}},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out")}},
        "admin": {"listen": f"127.0.0.1:{admin}", "token": ADMIN, "header_timeout": f"{HEADER_TIMEOUT}s",
                  "max_connections": 20},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "shutdown_grace": "2s"},
    }


def accept_queue(port: int) -> int:
    """Connections waiting for accept() on a listening loopback port (/proc/net/tcp's rx_queue)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"nothing listens on port {port}")


def spooled(tmp_path: Path) -> int:
    """Records in the ingest spool (what was stored, whatever was answered)."""
    return sum(1 for p in (tmp_path / "state" / "spool" / "ingest").glob("*.log")
               for line in p.read_bytes().splitlines() if line and not line.startswith(b"#"))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("edges")
    ports = {"ingest": free_port(), "admin": free_port()}
    cfg = write_config(tmp_path / "edges.toml", edge_doc(tmp_path, ports["ingest"], ports["admin"]))
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: "accepting POST" in d.stderr, 30, what="the ingest server")
        yield d, ports, tmp_path
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
    assert "Traceback" not in d.stderr


def nested(levels: int) -> bytes:
    return b'{"a":' * (levels - 1) + b'{"user_id": "deep", "ts": %d}' % BASE_MS + b"}" * (levels - 1)


def test_every_malformed_request_gets_a_4xx_with_a_reason(daemon):
    d, ports, tmp_path = daemon
    url = f"http://127.0.0.1:{ports['ingest']}/ingest"
    accepted = 0
    assert post(url, nested(200), AUTH)[:2] == (202, {"accepted": 1})
    accepted += 1
    for levels in (201, 253, 255, 600, 1024, 1025, 5000):
        status, doc, _ = post(url, nested(levels), AUTH)
        assert (status, doc["error"]) == (400, "line 1: nested deeper than 200 levels"), levels
    deep_list = b'{"user_id": "x", "v": ' + b"[" * 300 + b"]" * 300 + b"}"
    assert post(url, b'[{"user_id": "a"}, ' + deep_list + b"]", AUTH)[1]["error"] == \
        "item 2: nested deeper than 200 levels"
    ndjson = {**AUTH, "Content-Type": "application/x-ndjson"}
    assert post(url, b'{"user_id": "a"}\n' + nested(300), ndjson)[1]["error"] == "line 2: nested deeper than 200 levels"
    status, doc, _ = post(url, b'{"user_id": "a", "ts": 1}\n{oops\n', ndjson)
    assert status == 400 and doc["error"].startswith("line 2: invalid JSON") and doc["accepted"] == 0
    status, doc, _ = post(url, b'{"user_id": "\xff\xfe"}', AUTH)
    assert status == 400 and doc["error"].startswith("line 1: invalid JSON")
    for garbage in (b"\x1f\x8bnot gzip", b"plain", __import__("gzip").compress(b'{"user_id": "a"}')[:-6]):
        assert post(url, garbage, {**AUTH, "Content-Encoding": "gzip"})[:2] == (
            400, {"error": "invalid gzip body", "accepted": 0})
    assert post(url, b"{}", {**AUTH, "Content-Encoding": "br"})[0] == 415

    # headers: not UTF-8, not a bearer, missing, malformed
    body = b'{"user_id": "a"}'
    head = b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(body)
    status, answer = raw_request(ports["ingest"], head + b"Authorization: Bearer \xff\xfe\xfd\r\n\r\n" + body)
    assert (status, orjson.loads(answer)["error"]) == (400, "the Authorization header is not valid UTF-8")
    status, answer = raw_request(ports["ingest"], head + b"Authorization: Basic YTpi\r\n\r\n" + body)
    assert (status, orjson.loads(answer)["error"]) == (401, "expected Authorization: Bearer <token>")
    assert raw_request(ports["ingest"], head + b"\r\n" + body)[0] == 401
    assert raw_request(ports["ingest"], head + b"Authorization: Bearer " + TOKEN.encode() + b"x\r\n\r\n" + body)[0] == 401
    assert raw_request(ports["ingest"], b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")[0] == 400
    assert raw_request(ports["ingest"], b"POST /ingest HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")[0] == 400
    assert raw_request(ports["ingest"], b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\0" * 40)[0] == 400  # TLS
    auth = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
    for raw in (b"POST /ingest HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: -1\r\n\r\n",
                b"POST /ingest HTTP/1.1\r\nHost: x\r\n" + auth + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
                b"POST /ingest HTTP/1.1\r\nHost: x\r\n" + auth + b"X-Big: " + b"a" * 20000 + b"\r\n\r\n",
                b"POST /ingest HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(300)) + b"\r\n",
                b"POST /ingest\xff HTTP/1.1\r\nHost: x\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"):
        assert raw_request(ports["ingest"], raw)[0] == 400, raw[:60]
    chunked = b"POST /ingest HTTP/1.1\r\nHost: x\r\n" + auth + b"Transfer-Encoding: chunked\r\n\r\n"
    record = b'{"user_id": "chunked", "ts": %d}' % BASE_MS
    assert raw_request(ports["ingest"], chunked + b"%x\r\n%s\r\n0\r\n\r\n" % (len(record), record))[0] == 202
    accepted += 1

    # the admin server: the same headers, and a limit that is not a number
    admin = f"http://127.0.0.1:{ports['admin']}"
    for path in ("/api/status", "/metrics", "/readyz", "/healthz"):
        status, answer = raw_request(ports["admin"], b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                                     b"Authorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n")
        assert status in ((400,) if path.startswith(("/api", "/metrics")) else (200, 503)), (path, status)
    for limit in ("abc", "-1", "1e3", "1001", "99999999999999999999", "%FF", "%D9%A3"):
        status, answer, _ = get(f"{admin}/api/runs?limit={limit}", ADMIN)
        assert status == 400 and b"limit must be a whole number" in answer, limit
    assert get(f"{admin}/api/runs?limit=5", ADMIN)[0] == 200
    assert get(f"{admin}/api/runs?limit=5", "wrong")[0] == 401

    wait_until(lambda: spooled(tmp_path) == accepted, 10, what="the accepted record in the spool")
    assert "Traceback" not in d.stderr and "(500)" not in d.stderr
    # each kind of refusal logged once, as one line; the rest are summed up later
    assert d.stderr.count("ingest: malformed requests (400)") == 1  # 9 of them
    assert d.stderr.count("ingest: requests refused (400)") == 1 and d.stderr.count("ingest: requests refused (401)") == 1


def test_half_sent_requests_are_dropped_while_real_ones_go_on(daemon):
    d, ports, tmp_path = daemon
    log_before = len(d.stderr.encode())
    url = f"http://127.0.0.1:{ports['ingest']}/ingest"
    before = spooled(tmp_path)
    sel = selectors.DefaultSelector()
    opened: dict[socket.socket, tuple[str, float]] = {}
    for i in range(200):
        s = socket.create_connection(("127.0.0.1", ports["ingest"]), timeout=5)
        if i % 4 == 0:  # headers done, body never finished
            s.sendall(b"POST /ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() +
                      b"\r\nContent-Length: 100000\r\n\r\n{\"user_id\":")
            kind = "body"
        else:  # headers never finished, one more byte every 200 ms (a slowloris)
            s.sendall(b"POST /ingest HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            kind = "head"
        s.setblocking(False)
        opened[s] = (kind, time.monotonic())
        sel.register(s, selectors.EVENT_READ)
    dropped: dict[str, list[float]] = {"head": [], "body": []}
    answers: dict[str, set[bytes]] = {"head": set(), "body": set()}
    real, real_slowest = 0, 0.0
    deadline = time.monotonic() + BODY_TIMEOUT + 5
    next_trickle = time.monotonic()
    while opened and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.05):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except (ConnectionResetError, BlockingIOError):
                data = b""
            kind, t0 = opened[s]
            if data:
                answers[kind].add(data.split(b"\r\n", 1)[0])
                continue  # the answer first; the close follows
            dropped[kind].append(time.monotonic() - t0)
            sel.unregister(s)
            s.close()
            del opened[s]
        now = time.monotonic()
        if now >= next_trickle:
            next_trickle = now + 0.2
            for s, (kind, _) in list(opened.items()):
                try:
                    s.send(b"a" if kind == "head" else b" ")
                except OSError:
                    pass
            t0 = time.monotonic()  # a real producer and a probe, while the slow ones hang on
            row = orjson.dumps({"user_id": "real", "ts": BASE_MS})
            assert post(url, row, AUTH)[0] == 202
            assert get(f"http://127.0.0.1:{ports['admin']}/healthz")[0] == 200
            real += 1
            real_slowest = max(real_slowest, time.monotonic() - t0)
    for s in opened:
        s.close()
    assert not opened, f"{len(opened)} slow connections still open"
    assert len(dropped["head"]) == 150 and len(dropped["body"]) == 50
    assert max(dropped["head"]) < HEADER_TIMEOUT + 1.0, max(dropped["head"])
    assert max(dropped["body"]) < BODY_TIMEOUT + 1.0, max(dropped["body"])
    assert answers["head"] == {b"HTTP/1.1 408 Request Timeout"} and answers["body"] == {b"HTTP/1.1 408 Request Timeout"}
    assert real >= 5 and real_slowest < 1.0, (real, real_slowest)
    wait_until(lambda: spooled(tmp_path) == before + real, 10, what="the real records, and nothing else, stored")
    log = d.stderr.encode()[log_before:]
    print(f"slow clients: headers dropped after {min(dropped['head']):.2f}..{max(dropped['head']):.2f}s, bodies "
          f"after {min(dropped['body']):.2f}..{max(dropped['body']):.2f}s; {real} real POSTs, slowest "
          f"{real_slowest * 1000:.0f} ms; {len(log)} bytes of log")
    assert len(log) < 2000, log.decode(errors="replace")


def test_connections_beyond_the_cap_are_refused_at_once(daemon):
    d, ports, tmp_path = daemon
    held = [socket.create_connection(("127.0.0.1", ports["admin"]), timeout=5) for _ in range(20)]
    try:
        status, answer = raw_request(ports["admin"], b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
        assert status == 503 and b"max_connections = 20" in answer
        assert get(f"http://127.0.0.1:{ports['ingest']}/ingest")[0] == 405  # the other server is not touched
    finally:
        for s in held:
            s.close()
    wait_until(lambda: get(f"http://127.0.0.1:{ports['admin']}/healthz")[0] == 200, 10, what="room again")


def test_a_full_spool_answers_503_and_stores_nothing_of_it(tmp_path):
    ports = {"ingest": free_port(), "admin": free_port()}
    cfg = write_config(tmp_path / "full.toml", edge_doc(tmp_path, ports["ingest"], ports["admin"], max_spool=4096))
    url = f"http://127.0.0.1:{ports['ingest']}/ingest"
    body = orjson.dumps([{"user_id": f"u{i}", "ts": BASE_MS} for i in range(20)])
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: "accepting POST" in d.stderr, 30, what="the ingest server")
        answers = [post(url, body, AUTH) for _ in range(15)]
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
    statuses = [a[0] for a in answers]
    assert set(statuses) == {202, 503} and statuses.index(503) > 0
    assert all(a[2].get("Retry-After") == "1" for a in answers if a[0] == 503)
    assert spooled(tmp_path) == 20 * statuses.count(202)
    assert "Traceback" not in d.stderr


@pytest.fixture
def small_disk(tmp_path):
    with small_tmpfs(tmp_path / "state", "1m") as mount:
        yield mount


def test_a_full_disk_answers_503_and_stores_nothing_of_it(tmp_path, small_disk):
    ports = {"ingest": free_port(), "admin": free_port()}
    cfg = write_config(tmp_path / "disk.toml", edge_doc(tmp_path, ports["ingest"], ports["admin"]))
    url = f"http://127.0.0.1:{ports['ingest']}/ingest"
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: "accepting POST" in d.stderr, 30, what="the ingest server")
        free = __import__("shutil").disk_usage(small_disk).free
        (small_disk / "filler").write_bytes(b"\0" * (free - 48 * 1024))
        answers = []
        for i in range(40):
            rows = [{"user_id": f"u{i}-{j}", "ts": BASE_MS, "pad": "x" * 100} for j in range(30)]
            answers.append((post(url, orjson.dumps(rows), AUTH), len(rows)))
        d.signal(signal.SIGTERM)
        d.wait(30)
    statuses = [a[0][0] for a in answers]
    assert set(statuses) <= {202, 503} and 503 in statuses and 202 in statuses, statuses
    assert all(a[0][2].get("Retry-After") == "1" and "disk full" in a[0][1]["error"] for a in answers
               if a[0][0] == 503)
    (small_disk / "filler").unlink()
    assert spooled(tmp_path) == sum(n for a, n in answers if a[0] == 202)


def test_more_slow_clients_than_open_files(tmp_path):
    """The incident, scaled down: more half-sent requests than the daemon has file descriptors. The
    cap refuses the excess at once, the admin server answers throughout, the slow ones are dropped
    at the header timeout and then real requests are stored; the log stays a few lines long."""
    import resource

    ports = {"ingest": free_port(), "admin": free_port()}
    cfg = write_config(tmp_path / "fds.toml", edge_doc(tmp_path, ports["ingest"], ports["admin"], max_connections=100,
                                                       header_timeout="3s"))
    url = f"http://127.0.0.1:{ports['ingest']}/ingest"
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: "accepting POST" in d.stderr, 30, what="the ingest server")
        # room for the cap and SPARE_DESCRIPTORS (a backlog of accepts in flight), not for 600 clients
        used = len(list(Path(f"/proc/{d.proc.pid}/fd").iterdir()))
        limit = used + 100 + SPARE_DESCRIPTORS
        resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (limit, limit))
        log_before = len(d.stderr.encode())
        slow, connected_at = [], []
        began = time.monotonic()
        for i in range(limit + 100):
            # clients 100-199 connect and send while the daemon is stopped, so their heads are queued
            # before it accepts them: the case _discard_unread is for (a close over unread bytes is a reset)
            if i == 100:  # once every client so far is accepted: the backlog holds 128
                wait_until(lambda: accept_queue(ports["ingest"]) == 0, 10, what="the first 100 clients accepted")
                d.proc.send_signal(signal.SIGSTOP)
            elif i == 200:
                d.proc.send_signal(signal.SIGCONT)
            s = socket.create_connection(("127.0.0.1", ports["ingest"]), timeout=5)
            s.sendall(b"POST /ingest HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(s)
            connected_at.append(time.monotonic() - began)
        t0 = time.monotonic()
        firsts = []
        for i, s in enumerate(slow):
            s.settimeout(5)
            try:
                firsts.append(s.recv(200).split(b"\r\n", 1)[0])
            except (ConnectionResetError, TimeoutError) as e:
                firsts.append(type(e).__name__.encode())
            if i % 50 == 0:
                assert get(f"http://127.0.0.1:{ports['admin']}/healthz")[0] == 200
        took = time.monotonic() - t0
        for s in slow:
            s.close()
        # Every client is answered, none sees a bare close or a reset (the old bug: a refused client's
        # unread bytes turned the close into a reset that discarded the 503). The first 100 fill the
        # cap and time out with 408; a later one is refused with 503 at once, unless it connected after
        # the first time-outs (3 s) had freed places, when it may be admitted and time out in turn.
        refused_line, timed_out_line = b"HTTP/1.1 503 Service Unavailable", b"HTTP/1.1 408 Request Timeout"
        unanswered = [(i, f) for i, f in enumerate(firsts) if f not in (refused_line, timed_out_line)]
        assert not unanswered, (unanswered[:5], len(unanswered), d.stderr[log_before:])
        assert all(f == timed_out_line for f in firsts[:100]), firsts[:100].count(refused_line)
        admitted_late = [i for i in range(100, len(firsts)) if firsts[i] == timed_out_line]
        assert all(connected_at[i] >= 3.0 for i in admitted_late), [(i, connected_at[i]) for i in admitted_late[:5]]
        assert firsts.count(refused_line) >= 100 and took < 5, (firsts.count(refused_line), took)
        wait_until(lambda: post(url, orjson.dumps({"user_id": "after", "ts": BASE_MS}), AUTH)[0] == 202, 10,
                   what="a real POST to be stored again")
        assert get(f"http://127.0.0.1:{ports['admin']}/api/status", ADMIN)[0] == 200
        log = d.stderr.encode()[log_before:]
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
    assert len(log) < 2000 and b"Traceback" not in log, log.decode(errors="replace")


def test_a_stalled_head_longer_than_keepalive_is_answered_408(tmp_path):
    """header_timeout past keepalive_timeout: aiohttp's own keep-alive timer (armed when a connection
    opens) had closed a stalled request head bare, before the 408."""
    ports = {"ingest": free_port(), "admin": free_port()}
    cfg = write_config(tmp_path / "ka.toml", edge_doc(tmp_path, ports["ingest"], ports["admin"], header_timeout="3s",
                                                      keepalive_timeout="1s"))
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: "accepting POST" in d.stderr, 30, what="the ingest server")
        clients = []
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", ports["ingest"]), timeout=10)
            s.sendall(b"POST /ingest HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            clients.append((s, time.monotonic()))
        for s, began in clients:
            first = s.recv(200).split(b"\r\n", 1)[0]
            assert first == b"HTTP/1.1 408 Request Timeout" and time.monotonic() - began >= 2.9, first
            s.close()
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
