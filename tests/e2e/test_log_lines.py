"""The lines a finite run prints read as a person would write them (issue 28): no "first window
closes in ..." when the input is all there and the windows close as it is read, a shutdown summary
in words, and floats in the stdout summary without binary noise (0.3, not 0.30000000000000004).
The real `rtstream run`."""

from __future__ import annotations

import re

from tests.data import BASE_MS, write_lines
from tests.support import run_cli, write_config


def test_a_finite_file_run_says_what_it_did_in_plain_lines(tmp_path):
    # 0.1 + 0.2 is 0.30000000000000004 in binary floating point: the summary shows 0.3
    events = [{"user_id": "u1", "ts": BASE_MS + i * 1000, "amount": a} for i, a in enumerate([0.1, 0.2])]
    events += [{"user_id": "u2", "ts": BASE_MS + 400_000 + i, "amount": 862.45} for i in range(3)]
    write_lines(tmp_path / "in.jsonl", events)
    cfg = write_config(tmp_path / "rt.toml", {
        "pipeline": {"name": "plain", "flow": "events >> per_user >> [show, keep]"},
        "window": {"size": "5m", "lateness": "0s"},
        "sources": {"events": {"type": "file", "path": str(tmp_path / "in.jsonl")}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"spent": "sum(amount)"}}},
        "sinks": {"show": {"type": "stdout"}, "keep": {"type": "file", "path": str(tmp_path / "out")}},
        "daemon": {"state_dir": str(tmp_path / "state")},
    })
    res = run_cli("run", "-c", str(cfg), timeout=120)
    assert res.returncode == 0, res.stderr
    assert "first closes" not in res.stderr
    assert re.search(r"rtstream\.runtime: 2 windows written; from a window's close to its last sink write: "
                     r"median \d+(ms|\.\ds), 99th percentile \d+(ms|\.\ds), slowest \d+(ms|\.\ds)$", res.stderr, re.M), \
        res.stderr
    shown = res.stdout.splitlines()
    assert shown[0].endswith('2 records -> 1 row, first {"user_id":"u1","spent":0.3}'), shown
    assert shown[1].endswith('3 records -> 1 row, first {"user_id":"u2","spent":2587.35}'), shown
    written = (tmp_path / "out").glob("*.jsonl")
    assert any("0.30000000000000004" in p.read_text() for p in written)  # the data keeps every digit


def test_a_run_paced_by_the_clock_still_says_when_its_first_window_closes(tmp_path):
    cfg = write_config(tmp_path / "rt.toml", {
        "pipeline": {"name": "paced", "flow": "events >> per_user >> show"},
        "window": {"size": "1m"},
        "sources": {"events": {"type": "generator", "rate": 200, "count": 20}},  # realtime: paced by the clock
        "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}}},
        "sinks": {"show": {"type": "stdout"}},
        "daemon": {"state_dir": str(tmp_path / "state")},
    })
    res = run_cli("run", "-c", str(cfg), timeout=180)
    assert res.returncode == 0, res.stderr
    note = [line for line in res.stderr.splitlines() if "first closes" in line]
    assert len(note) == 1 and "windows of 1m: for records arriving now, the first closes at" in note[0]
    # said once the pipeline is up: a start-up failure is not preceded by it
    assert res.stderr.index("pipeline paced running") < res.stderr.index(note[0])
