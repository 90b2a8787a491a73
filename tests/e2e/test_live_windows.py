"""Long windows on a live daemon: running results (emit = "updates") and checkpoints."""

from __future__ import annotations

import signal
import sqlite3

from tests.data import BASE_MS, make_events, write_lines
from tests.support import Daemon, wait_until, write_config


def tail_config(tmp_path, window, state=None, sinks=None):
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
    return write_config(tmp_path / "long.toml", doc)


def rows(tmp_path):
    path = tmp_path / "out.db"
    if not path.exists():
        return []
    db = sqlite3.connect(path)
    try:
        return db.execute("select kind, n, final from hourly order by kind").fetchall()
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
