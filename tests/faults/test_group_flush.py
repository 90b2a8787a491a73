"""Session windows close many at once and are flushed in groups (rtstream.runtime.flush_group): with
a python sink (which takes a group's windows in one call) that fails on some windows, every other
window is stored once and the failing ones are dead-lettered or retried exactly as one by one."""

from __future__ import annotations

from collections import Counter

from rtstream.model.window import iso_utc
from tests.data import make_events, write_lines
from tests.reference import session_truth
from tests.support import read_jsonl, run_cli, write_config

GAP_MS = 5_000


def setup(tmp_path, call: str, on_failure: str):
    events = make_events(3000, span_s=900, seed=11, users=40)
    write_lines(tmp_path / "in.jsonl", events)
    (tmp_path / "sink").mkdir()
    cfg = write_config(tmp_path / "g.toml", {
        "pipeline": {"name": "groups", "flow": "events >> per_user >> out"},
        "window": {"type": "session", "gap": "5s", "lateness": "2s"},
        "sources": {"events": {"type": "file", "path": str(tmp_path / "in.jsonl"), "batch_size": 500}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}}},
        "sinks": {"out": {"type": "python", "call": call, "retries": 1, "retry_delay": "10ms",
                          "max_retry_delay": "20ms", "on_failure": on_failure}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state")},
    })
    want = Counter((iso_utc(s), iso_utc(e), k, n) for s, e, k, n, _ in session_truth(events, GAP_MS, "user_id"))
    return cfg, want


def stored(tmp_path) -> Counter:
    return Counter((r["window_start"], r["window_end"], r["user_id"], r["n"])
                   for r in read_jsonl(tmp_path / "sink" / "stored.jsonl"))


def test_a_python_sink_failing_on_some_sessions_dead_letters_just_those(tmp_path):
    cfg, want = setup(tmp_path, "tests.faults.group_sinks:refuses_u7", "dead_letter")
    res = run_cli("run", "-c", str(cfg), env={"GROUP_SINK_DIR": str(tmp_path / "sink")})
    assert res.returncode == 0, res.stderr
    u7 = Counter({w: c for w, c in want.items() if w[2] == "u7"})
    assert len(want) > 1000 and len(u7) > 10  # many sessions, so many groups, some of them failing
    assert stored(tmp_path) == want - u7  # every other session once, none twice
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert Counter((d["value"]["window_start"], d["value"]["window_end"], d["value"]["user_id"], d["value"]["n"])
                   for d in dead) == u7
    assert {(d["reason"], d["stage"], d["detail"]) for d in dead} == {
        ("sink_failed", "out", "ConnectionError: u7 is not welcome here")}
    from rtstream.runtime.run_history import RunHistory

    runs = RunHistory(tmp_path / "state" / "runs.db").windows(limit=1000)
    assert len(runs) == 100  # the newest admin.history windows
    states = Counter(w["components"]["out"]["state"] for w in runs)
    assert set(states) <= {"success", "dead_lettered"} and states["success"] > 0


def test_a_python_sink_down_for_a_while_halts_then_stores_every_session_once(tmp_path):
    cfg, want = setup(tmp_path, "tests.faults.group_sinks:down_for_a_while", "halt")
    res = run_cli("run", "-c", str(cfg), env={"GROUP_SINK_DIR": str(tmp_path / "sink")})
    assert res.returncode == 0, res.stderr
    assert stored(tmp_path) == want  # nothing lost, nothing twice
    assert read_jsonl(tmp_path / "dead.jsonl") == []
    assert "failed on window" in res.stderr and "recovered on attempt" in res.stderr
