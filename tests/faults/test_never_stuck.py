"""Never stuck on one record: records that used to stop the daemon for good (nesting past orjson's
254 levels with a bad time, a 50 MB field) are dead-lettered with their reason and position, small,
and the daemon goes on, restarted or not."""

from __future__ import annotations

import shutil
import signal
import urllib.error
import urllib.request

import orjson

from rtstream.testing.peers.ports import free_port
from tests.data import BASE_MS, make_events, write_lines
from tests.reference import tumbling_truth
from tests.support import Daemon, read_jsonl, wait_until, window_files, write_config

DEPTHS = range(253, 301)  # the record's own object counts as one level
HTTP_DEPTHS = range(190, 261, 5)  # ingest stores up to 200 levels (and dead-letters them) and refuses deeper at the door
INGEST_MAX_DEPTH = 200
LINE_MAX = 8192  # a dead letter: a 4 KiB value excerpt, a 1,000-char detail and the fixed keys


def deep_record(depth: int, n: int) -> bytes:
    """A record nested `depth` levels deep in all (itself included), with a time that does not parse."""
    inner = b"[" * (depth - 1) + b"%d" % n + b"]" * (depth - 1)
    return b'{"user_id": "deep%d", "ts": "not a time", "nest": %s}' % (n, inner)


def config(tmp_path, source, state="state", **daemon):
    doc = {
        "pipeline": {"name": "stuck", "flow": "events >> per_user >> out"},
        # windows close by event time alone (a "closer" record far ahead), never by the wall clock
        "window": {"size": "1m", "lateness": "1s", "idle_timeout": "1h"},
        "sources": {"events": source},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"events": "count()"}}},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out")}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / state), "commit_interval": "200ms", "shutdown_grace": "10s", **daemon},
    }
    return write_config(tmp_path / f"{state}.toml", doc)


def results(tmp_path):
    return {(r["window_start"], r["user_id"]): r["events"] for rows in window_files(tmp_path / "out").values()
            for r in rows}


def truth(events):
    return {k: v["events"] for k, v in tumbling_truth(events, 60, "user_id").items()}


def closer(at_s):
    """A record that moves the watermark to BASE + at_s: every window before it closes; its own stays open."""
    return {"user_id": "closer", "ts": BASE_MS + at_s * 1000, "amount": 0}


def test_deep_records_in_a_file_are_dead_lettered_and_a_restart_replaying_them_goes_on(tmp_path):
    good = make_events(1200, span_s=600, seed=141)
    lines = [orjson.dumps(e) for e in good]
    for n, depth in enumerate(DEPTHS):
        lines.insert(25 * n + 7, deep_record(depth, n))
    lines.append(orjson.dumps(closer(700)))
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    raw = src.read_bytes()
    source = {"type": "file", "path": str(src), "follow": True, "poll_interval": "50ms", "batch_size": 40}

    def check_dead(expected_copies):
        dead = read_jsonl(tmp_path / "dead.jsonl")
        assert len(dead) == expected_copies * len(DEPTHS)
        for d in dead:
            assert (d["reason"], d["source"], d["partition"]) == ("no_time", "events", 0)
            assert raw[d["offset"]:].startswith(b'{"user_id": "deep'), d["offset"]  # the record's own position
            assert d["value_truncated"] is True and d["value"].startswith('{"user_id":"deep')
        assert max(len(line) for line in (tmp_path / "dead.jsonl").read_bytes().splitlines()) < LINE_MAX

    with Daemon(config(tmp_path, source), tmp_path) as d:
        wait_until(lambda: results(tmp_path) == truth(good), 60, what="every good window")
        wait_until(lambda: len(read_jsonl(tmp_path / "dead.jsonl")) == len(DEPTHS), 10, what="the dead letters")
        later = [closer(700)] + [dict(e, ts=e["ts"] + 800_000) for e in make_events(300, span_s=120, seed=142)]
        write_lines(src, [*later[1:], closer(2000)], mode="ab")  # records after the poison are windowed too
        wait_until(lambda: results(tmp_path) == truth(good + later), 60, what="the later windows")
        assert d.proc.poll() is None, d.stderr[-3000:]
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    check_dead(1)

    # a restart that reads it all again (a fresh state_dir: nothing committed), poison included
    shutil.rmtree(tmp_path / "out")
    with Daemon(config(tmp_path, source, state="state2"), tmp_path) as d:
        wait_until(lambda: results(tmp_path) == truth(good + later), 60, what="every window after the restart")
        wait_until(lambda: len(read_jsonl(tmp_path / "dead.jsonl")) == 2 * len(DEPTHS), 10, what="the replayed poison")
        assert d.proc.poll() is None, d.stderr[-3000:]
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    check_dead(2)


def post(url, body):
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/x-ndjson"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_deep_records_over_http_ingest_stored_or_refused_never_fatal_and_a_replay_goes_on(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/ingest"
    good = make_events(600, span_s=300, seed=143)
    source = {"type": "http_ingest", "listen": f"127.0.0.1:{port}", "path": "/ingest"}
    cfg = config(tmp_path, source, commit_interval="1h")  # nothing committed before the kill: all is replayed
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: "accepting POST" in d.stderr, 30, what="the ingest server")
        statuses = {depth: post(url, deep_record(depth, n)) for n, depth in enumerate(HTTP_DEPTHS)}
        assert post(url, b"\n".join(orjson.dumps(e) for e in [*good, closer(400)])) == 202
        accepted = [depth for depth, status in statuses.items() if status == 202]
        assert accepted == [d for d in HTTP_DEPTHS if d <= INGEST_MAX_DEPTH], statuses  # dead-lettered below
        assert all(statuses[d] == 400 for d in HTTP_DEPTHS if d > INGEST_MAX_DEPTH), statuses  # never stored
        wait_until(lambda: results(tmp_path) == truth(good), 60, what="the good windows")
        wait_until(lambda: len(read_jsonl(tmp_path / "dead.jsonl")) == len(accepted), 10, what="the dead letters")
        assert d.proc.poll() is None, d.stderr[-3000:]
        d.kill()  # the 202-then-die case, now with a daemon that did not die: kill it, the spool is replayed
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: len(read_jsonl(tmp_path / "dead.jsonl")) == 2 * len(accepted), 60,
                   what="the replayed poison dead-lettered again")
        later = [closer(400)] + [dict(e, ts=e["ts"] + 600_000) for e in make_events(200, span_s=60, seed=144)]
        assert post(url, b"\n".join(orjson.dumps(e) for e in [*later[1:], closer(2000)])) == 202
        wait_until(lambda: results(tmp_path) == truth(good + later), 60, what="the later windows")
        assert d.proc.poll() is None, d.stderr[-3000:]
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert {(x["reason"], x["source"], x["partition"]) for x in dead} == {("no_time", "events", 0)}
    assert sorted({x["offset"] for x in dead}) == sorted(x["offset"] for x in dead[:len(accepted)])
    print(f"\nFIGURES ingest depths answered: {sorted(set(statuses.values()))}, accepted {len(accepted)} of "
          f"{len(statuses)} (depth {min(accepted)}-{max(accepted)})")


def vm_hwm_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_50_mb_field_makes_a_small_dead_letter_a_small_log_line_and_no_memory_blowup(tmp_path):
    good = make_events(300, span_s=120, seed=145)
    src = tmp_path / "in.jsonl"
    with open(src, "wb") as fh:
        fh.write(b"\n".join(orjson.dumps(e) for e in good[:150]) + b"\n")
        # a 50 MB field, and a 1 MB time that does not parse (whose error message must not carry it)
        fh.write(b'{"user_id": "huge", "ts": "' + b"9" * 1_000_000 + b'", "blob": "' + b"x" * 50_000_000 + b'"}\n')
        fh.write(b"\n".join(orjson.dumps(e) for e in [*good[150:], closer(400)]) + b"\n")
    source = {"type": "file", "path": str(src), "follow": True, "poll_interval": "50ms"}
    with Daemon(config(tmp_path, source), tmp_path) as d:
        wait_until(lambda: results(tmp_path) == truth(good), 60, what="every good window")
        wait_until(lambda: read_jsonl(tmp_path / "dead.jsonl"), 10, what="the dead letter")
        hwm = vm_hwm_mb(d.proc.pid)
        assert d.proc.poll() is None
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    (line,) = (tmp_path / "dead.jsonl").read_bytes().splitlines()
    dead = orjson.loads(line)
    assert dead["reason"] == "no_time" and dead["value_truncated"] is True
    assert dead["value"].startswith('{"user_id":"huge","ts":"999') and src.read_bytes()[dead["offset"]:].startswith(
        b'{"user_id": "huge"')
    assert len(line) < LINE_MAX and len(dead["detail"]) <= 1001
    longest_log = max(len(x) for x in d.stderr.splitlines())
    assert longest_log < 2000, longest_log
    assert hwm < 400, hwm
    print(f"\nFIGURES 50 MB field (a 51 MB line): dead-letter line {len(line)} bytes, detail {len(dead['detail'])} chars, "
          f"longest log line {longest_log} chars, daemon VmHWM {hwm:.0f} MB")
