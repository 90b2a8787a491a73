"""A full state_dir: a clear error naming the file and a non-zero exit, nothing corrupted; with space
again, a restart resumes and the results are whole."""

from __future__ import annotations

import os

import orjson
import pytest

from tests.data import BASE_MS, make_events
from tests.reference import tumbling_truth
from tests.support import Daemon, read_jsonl, small_tmpfs, wait_until, window_files, write_config


@pytest.fixture
def small_disk(tmp_path):
    with small_tmpfs(tmp_path / "state", "2m") as mount:
        yield mount


def test_full_state_dir_stops_clearly_and_resumes_with_space(tmp_path, small_disk):
    events = make_events(3000, span_s=600, seed=95)
    lines = []
    for i, e in enumerate(events):
        lines.append(orjson.dumps(e))
        if i % 5 == 0:
            lines.append(b'{"broken": ' + b"x" * 300)  # dead letters grow fast and fill the disk
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (1900 * 1024))  # room to start (the state files), not for the dead letters
    doc = {
        "pipeline": {"name": "disk", "flow": "tail >> per_user >> out"},
        "window": {"size": "1m", "lateness": "1s", "idle_timeout": "1h"},
        "sources": {"tail": {"type": "file", "path": str(src), "follow": True, "batch_size": 50,
                             "poll_interval": "50ms"}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}}},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out")}},
        "daemon": {"state_dir": str(small_disk), "commit_interval": "100ms"},
    }
    cfg = write_config(tmp_path / "d.toml", doc)
    with Daemon(cfg, tmp_path) as d:
        code = d.wait(60)
    assert code == 1
    assert "No space left on device" in d.stderr and str(small_disk) in d.stderr
    positions = small_disk / "positions" / "tail.json"
    if positions.exists():
        orjson.loads(positions.read_bytes())  # whole, never half-written

    filler.unlink()  # space again
    with open(src, "ab") as fh:  # and a record far ahead, to close every window
        fh.write(orjson.dumps({"user_id": "closer", "ts": BASE_MS + 3_600_000}) + b"\n")
    with Daemon(cfg, tmp_path) as d:
        truth = tumbling_truth(events, 60, "user_id")
        wait_until(lambda: sum(len(r) for r in window_files(tmp_path / "out").values()) >= len(truth), 60,
                   what="every window after the restart")
        d.signal(15)
        assert d.wait(30) == 0
    got = {(r["window_start"], r["user_id"]): r["n"] for rows in window_files(tmp_path / "out").values() for r in rows}
    assert got == {k: v["events"] for k, v in truth.items()}
    dead = read_jsonl(small_disk / "dead_letters.jsonl")
    assert {d["offset"] for d in dead} >= {o for o in _broken_offsets(src)}  # every bad line, at least once
    assert os.path.getsize(small_disk / "dead_letters.jsonl") > 0


def _broken_offsets(path):
    raw = path.read_bytes()
    pos = 0
    for line in raw.split(b"\n"):
        if line.startswith(b'{"broken"'):
            yield pos
        pos += len(line) + 1
