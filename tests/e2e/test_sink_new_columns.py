"""The daemon goes on when records grow a field: the SQLite sink adds the column and writes every
window; a field whose name cannot be a column sends its record to the dead letters, not the sink
into a halt."""

from __future__ import annotations

import signal
import sqlite3

from tests.data import BASE_MS, write_lines
from tests.reference import iso
from tests.support import Daemon, read_jsonl, wait_until, write_config


def rows_of(path):
    try:
        db = sqlite3.connect(path)
        try:
            return db.execute("select id, window_start, country from raw order by id").fetchall()
        finally:
            db.close()
    except sqlite3.OperationalError:  # not made yet, or no column country yet
        return []


def test_records_that_grow_a_field_are_all_written_and_an_unusable_name_is_dead_lettered(tmp_path):
    src = tmp_path / "in.jsonl"
    first = [{"id": i, "ts": BASE_MS + i * 1000} for i in range(5)]                          # window 00:00:00
    grown = [{"id": 5 + i, "ts": BASE_MS + 10_000 + i * 1000, "country": "fr"} for i in range(5)]  # 00:00:10
    bad = [{"id": 10, "ts": BASE_MS + 20_000, "country": "de", "the country": "de"},            # 00:00:20
           {"id": 11, "ts": BASE_MS + 21_000, "country": "it"}]
    closer = [{"id": 12, "ts": BASE_MS + 60_000}]  # moves the watermark past the windows above
    write_lines(src, first + grown + bad + closer)
    doc = {
        "pipeline": {"name": "raw", "flow": "tail >> db"},
        "window": {"size": "10s", "lateness": "2s"},
        "sources": {"tail": {"type": "file", "path": str(src), "follow": True, "poll_interval": "20ms"}},
        "sinks": {"db": {"type": "sqlite", "path": str(tmp_path / "out.db"), "table": "raw"}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms"},
    }
    cfg = write_config(tmp_path / "raw.toml", doc)
    want = ([(e["id"], iso(BASE_MS), None) for e in first] + [(e["id"], iso(BASE_MS + 10_000), "fr") for e in grown]
            + [(11, iso(BASE_MS + 20_000), "it")])
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: rows_of(tmp_path / "out.db") == want, 30, what="the three closed windows in the table")
        wait_until(lambda: read_jsonl(tmp_path / "dead.jsonl"), 10, what="the dead letter")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    (dead,) = read_jsonl(tmp_path / "dead.jsonl")
    assert (dead["reason"], dead["stage"], dead["value"]["id"]) == ("sink_rejected", "db", 10)
    assert dead["detail"].startswith("field 'the country' is not a usable column name")
    assert "failed on window" not in d.stderr  # never halted
