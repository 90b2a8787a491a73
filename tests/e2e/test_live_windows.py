"""Windows on a live daemon: running results (emit = "updates"), checkpoints, sessions across a crash."""

from __future__ import annotations

import signal
import sqlite3
import urllib.request

import orjson

from rtstream.model.window import iso_utc
from rtstream.testing.peers.ports import free_port
from tests.data import BASE_MS, make_events, write_lines
from tests.reference import session_truth, tumbling_truth
from tests.support import Daemon, kill_after_a_commit, read_jsonl, status, wait_until, write_config


def tail_config(tmp_path, window, state=None, admin_port=None):
    doc = {
        "pipeline": {"name": "long", "flow": "tail >> agg >> db"},
        "window": {"size": "1h", "lateness": "0s", "idle_timeout": "1h", **window},
        "sources": {"tail": {"type": "file", "path": str(tmp_path / "in.jsonl"), "follow": True,
                             "poll_interval": "50ms", "batch_size": 100}},
        "stages": {"agg": {"type": "aggregate", "key": "kind", "aggregates": {"n": "count()", "spent": "sum(amount)"}}},
        "sinks": {"db": {"type": "sqlite", "path": str(tmp_path / "out.db"), "table": "hourly"}},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms"},
    }
    if state is not None:
        doc["state"] = state
    if admin_port is not None:
        doc["admin"] = {"listen": f"127.0.0.1:{admin_port}"}
    return write_config(tmp_path / "long.toml", doc)


def rows(tmp_path):
    path = tmp_path / "out.db"
    if not path.exists():
        return []
    db = sqlite3.connect(path)
    try:
        cols = [c[1] for c in db.execute("pragma table_info(hourly)")]
        return db.execute(f"select kind, n, {'final' if 'final' in cols else 'null'} from hourly order by kind").fetchall()
    except sqlite3.OperationalError:
        return []  # the table is not there yet
    finally:
        db.close()


def test_emit_updates_running_rows_then_the_final_row(tmp_path):
    events = make_events(600, span_s=1800, seed=3)
    src = tmp_path / "in.jsonl"
    write_lines(src, events[:300])
    cfg = tail_config(tmp_path, {"emit": "updates", "update_interval": "200ms"})
    with Daemon(cfg, tmp_path) as d:
        def running(n):
            got = rows(tmp_path)
            return got if sum(r[1] for r in got) == n and all(r[2] == 0 for r in got) else None
        wait_until(lambda: running(300), 30, what="running rows of the first 300 records")
        write_lines(src, events[300:], mode="ab")
        wait_until(lambda: running(600), 30, what="running rows of all 600 records")
        write_lines(src, [{"kind": "closer", "ts": BASE_MS + 2 * 3_600_000, "amount": 0.0}], mode="ab")
        final = wait_until(lambda: [r for r in rows(tmp_path) if r[0] != "closer" and r[2] == 1] or None, 30,
                           what="the final rows")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
    want = {k: sum(1 for e in events if e["kind"] == k) for k in {e["kind"] for e in events}}
    assert {k: n for k, n, _ in final} == want
    # each final row replaced its running row: one row per (window, kind), the closer's hour running
    assert sorted(rows(tmp_path)) == sorted([*final, ("closer", 1, 0)])


def checkpoint_position(tmp_path):
    path = tmp_path / "state" / "checkpoints.db"
    if not path.exists():
        return None
    db = sqlite3.connect(path)
    try:
        row = db.execute("select position from checkpoints where source = 'tail'").fetchone()
        return row[0] if row else None
    except sqlite3.OperationalError:
        return None
    finally:
        db.close()


def test_sigkill_between_checkpoints_replays_only_what_came_after_the_checkpoint(tmp_path):
    events = make_events(4000, span_s=1800, seed=5)  # one hour window, open the whole time
    src = tmp_path / "in.jsonl"
    write_lines(src, events[:3000])
    port = free_port()
    cfg = tail_config(tmp_path, {}, state={"checkpoint_interval": "1s"}, admin_port=port)
    with Daemon(cfg, tmp_path) as d:
        first = src.stat().st_size
        wait_until(lambda: checkpoint_position(tmp_path) == first, 30, what="a checkpoint of the first 3000")
        write_lines(src, events[3000:], mode="ab")
        wait_until(lambda: (status(port) or {}).get("records_in") == 4000, 30, what="all 4000 read")
        d.kill()
    position = checkpoint_position(tmp_path)
    positions = orjson.loads((tmp_path / "state" / "positions" / "tail.json").read_bytes())
    assert positions["position"] == 0  # the hour is still open: nothing is committed
    lines = src.read_bytes()
    after = lines[position:].count(b"\n")
    assert 0 < position and after <= 1000  # the kill came after the first checkpoint, before or after a later one

    closer = {"user_id": "closer", "kind": "closer", "ts": BASE_MS + 2 * 3_600_000, "amount": 0.0}
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: status(port), 30, what="the restarted daemon")
        write_lines(src, [closer], mode="ab")
        wait_until(lambda: len(rows(tmp_path)) == 3, 30, what="the hour's rows")
        assert status(port)["records_in"] == after + 1  # what followed the checkpoint, and the closer
        assert "restored 0 from its checkpoint: 1 open windows" in d.stderr
        metrics = wait_until(lambda: "rtstream_checkpoint_age_seconds" in (m := _get(f"http://127.0.0.1:{port}/metrics"))
                             and m, 10, what="a checkpoint in /metrics")
        assert "rtstream_checkpoints_total 0.0" not in metrics and "rtstream_checkpoint_bytes 0.0" not in metrics
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
    truth = tumbling_truth(events, 3600, "kind")
    db = sqlite3.connect(tmp_path / "out.db")
    got = {r[0]: (r[1], r[2]) for r in db.execute("select kind, n, spent from hourly")}
    assert {k: n for k, (n, _) in got.items()} == {k[1]: v["events"] for k, v in truth.items()}
    for (_, kind), want in truth.items():
        assert abs(got[kind][1] - want["spent"]) < 1e-6


def _get(url):
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.read().decode()


def test_sessions_survive_sigkill_and_restart_without_checkpoints(tmp_path):
    events = make_events(3000, span_s=3600, users=80, seed=23)  # sparse users: many sessions per user
    src = tmp_path / "in.jsonl"
    write_lines(src, events[:1500])
    doc = {
        "pipeline": {"name": "sessions", "flow": "tail >> agg >> db"},
        "window": {"type": "session", "gap": "3m", "lateness": "5s", "idle_timeout": "1h"},
        "sources": {"tail": {"type": "file", "path": str(src), "follow": True, "poll_interval": "50ms",
                             "batch_size": 50}},
        "stages": {"agg": {"type": "aggregate", "key": "user_id", "aggregates": {"events": "count()"}}},
        "sinks": {"db": {"type": "sqlite", "path": str(tmp_path / "out.db"), "table": "visits"}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms"},
    }
    cfg = write_config(tmp_path / "sessions.toml", doc)
    committed = kill_after_a_commit(cfg, tmp_path)
    assert 0 < committed < src.stat().st_size  # open sessions held the commit back
    write_lines(src, events[1500:], mode="ab")
    write_lines(src, [{"user_id": "closer", "ts": BASE_MS + 3 * 3_600_000, "amount": 0.0}], mode="ab")
    truth = session_truth(events, 180_000, "user_id")

    def written():
        try:
            with sqlite3.connect(tmp_path / "out.db") as db:
                return db.execute("select window_start, window_end, user_id, events from visits "
                                  "where user_id != 'closer'").fetchall()
        except sqlite3.OperationalError:
            return []
    assert written()  # sessions written before the kill, whose records the restart reads again
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: len(written()) >= len(truth), 30, what="every session")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
    want = sorted((iso_utc(s), iso_utc(e), u, n) for s, e, u, n, _ in truth)
    assert sorted(written()) == want  # none lost, none emitted twice in pieces
    assert read_jsonl(tmp_path / "dead.jsonl") == []
