"""A per-record stage feeding several branches, through the real daemon: `tail >> clean >> [per_user,
per_kind]`. `clean` (a map keeping purchases) runs once per record before the branches part, and each
branch aggregates its rows in its own window, checked against an independent reference; the shapes
not run are refused at validate with one line (exit 2)."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from rtstream.model.window import iso_utc  # formatting only: every window is computed here
from tests.data import BASE_MS, make_events, write_lines
from tests.support import LOOPS, Daemon, kill_mid_feed, run_cli, wait_until, window_files, write_config

MIN = 60_000
N = 2000


def config(tmp_path: Path, src: Path, flow: str | None = None, stages: dict | None = None) -> Path:
    doc = {
        "pipeline": {"name": "fan", "flow": flow or "tail >> clean >> [per_user, per_kind]\n"
                                                     "per_user >> users\nper_kind >> kinds"},
        "window": {"size": "1m", "lateness": "2s", "idle_timeout": "1h"},
        "sources": {"tail": {"type": "file", "path": str(src), "follow": True, "poll_interval": "20ms",
                             "batch_size": 100}},
        "stages": {
            "clean": {"type": "map", "call": "tests.e2e.userfns:purchases_tallied"},
            "per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()", "spent": "sum(amount)"}},
            "per_kind": {"type": "aggregate", "key": "kind", "aggregates": {"n": "count()"},
                         "window": {"size": "5m", "lateness": "2s", "idle_timeout": "1h"}},
            **(stages or {}),
        },
        "sinks": {"users": {"type": "file", "path": str(tmp_path / "users")},
                  "kinds": {"type": "file", "path": str(tmp_path / "kinds")}},
        "state": {"checkpoint_interval": "600ms"},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms"},
    }
    return write_config(tmp_path / "fan.toml", doc)


def reference(events: list[dict]) -> dict[str, dict]:
    users: dict = defaultdict(lambda: [0, 0.0])
    kinds: dict = defaultdict(int)
    for e in events:
        if e["kind"] != "purchase":
            continue
        u = users[(iso_utc(e["ts"] - e["ts"] % MIN), e["user_id"])]
        u[0] += 1
        u[1] += e["amount"]
        kinds[(iso_utc(e["ts"] - e["ts"] % (5 * MIN)), e["kind"])] += 1
    return {"users": {k: (v[0], v[1]) for k, v in users.items()}, "kinds": dict(kinds)}


def written(tmp_path: Path) -> dict[str, dict]:
    out: dict[str, dict] = {"users": {}, "kinds": {}}
    for rows in window_files(tmp_path / "users").values():
        for r in rows:
            out["users"][(r["window_start"], r["user_id"])] = (r["n"], r["spent"])
    for rows in window_files(tmp_path / "kinds").values():
        for r in rows:
            out["kinds"][(r["window_start"], r["kind"])] = r["n"]
    return out


def test_a_per_record_stage_before_a_fan_out_runs_once_per_record(tmp_path):
    events = make_events(N, span_s=600, seed=31)
    src = tmp_path / "in.jsonl"
    closer = {"user_id": "closer", "ts": BASE_MS + 3_600_000, "amount": 0.0, "kind": "purchase", "page": "/"}
    write_lines(src, [*events, closer])
    want = reference(events)
    tally = tmp_path / "tally.txt"
    with Daemon(config(tmp_path, src), tmp_path, env={"RTSTREAM_TALLY": str(tally)}) as d:
        wait_until(lambda: all(len(written(tmp_path)[k]) >= len(v) for k, v in want.items()), 60,
                   what="both branches' windows")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    got = written(tmp_path)
    assert set(got["users"]) == set(want["users"]) and got["kinds"] == want["kinds"]
    for k, (n, spent) in want["users"].items():
        assert got["users"][k][0] == n and abs(got["users"][k][1] - spent) < 1e-6, k
    assert len(tally.read_text().splitlines()) == N + 1  # once per record, not once per branch
    dead = tmp_path / "dead.jsonl"
    assert not dead.exists() or not dead.read_text().strip()


def test_validate_draws_the_fan_out(tmp_path):
    src = tmp_path / "in.jsonl"
    write_lines(src, make_events(5, span_s=10, seed=1))
    res = run_cli("validate", "-c", str(config(tmp_path, src)))
    assert res.returncode == 0, res.stderr
    assert "tail >> clean >> per_user >> users" in res.stdout and "clean fans out to per_user, per_kind" in res.stdout


@pytest.mark.parametrize(("flow", "stages", "says"), [
    ("tail >> per_user >> top >> [per_kind, out2]\nper_kind >> kinds\ntop >> users",
     {"top": {"type": "aggregate", "aggregates": {"n": "count()"}}},
     "pipeline.flow: 'top' follows the aggregate 'per_user' before a fan-out: only the aggregate's windows fan "
     "out"),
    ("tail >> per_user >> [per_kind, out2]\nper_kind >> kinds\ntail >> users",
     {}, "pipeline.flow: 'per_user' feeds several branches, so it runs once on every record of 'tail' before they "
         "part; 'tail' cannot also feed users"),
    ("tail >> clean >> [per_user, per_kind]\nper_user >> users\nper_kind >> kinds\ntail >> kinds",
     {}, "pipeline.flow: 'clean' feeds several branches, so it runs once on every record of 'tail' before they "
         "part; 'tail' cannot also feed kinds"),
    ("tail >> clean >> [per_user, per_kind]\nper_user >> [top, out2]\ntop >> users\nper_kind >> kinds",
     {"top": {"type": "aggregate", "aggregates": {"n": "count()"}}},
     "pipeline.flow: 'per_user' feeds top, out2: a window's rows feeding several stages is not run yet"),
])
def test_shapes_not_run_are_refused_in_one_line(tmp_path, flow, stages, says):
    src = tmp_path / "in.jsonl"
    write_lines(src, make_events(5, span_s=10, seed=1))
    cfg = config(tmp_path, src, flow=flow, stages=stages)
    text = cfg.read_text()
    if "out2" in flow:
        text += f'\n[sinks.out2]\ntype = "file"\npath = "{tmp_path / "out2"}"\n'
    if "clean" not in flow and "per_user >> [" in flow:
        text = text.replace('[stages.clean]\ntype = "map"\ncall = "tests.e2e.userfns:purchases_tallied"\n', "")
    elif "clean" not in flow:
        text = text.replace('[stages.clean]\ntype = "map"\ncall = "tests.e2e.userfns:purchases_tallied"\n', "")
    cfg.write_text(text)
    res = run_cli("validate", "-c", str(cfg))
    assert res.returncode == 2, res.stdout + res.stderr
    assert says in res.stdout + res.stderr, res.stdout + res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("seed", range(LOOPS))
def test_sigkill_mid_stream_then_restart_gives_the_uninterrupted_output(tmp_path, seed):
    events = make_events(N, span_s=600, seed=200 + seed)
    want = reference(events)
    src = tmp_path / "in.jsonl"
    write_lines(src, events[:400])
    cfg = config(tmp_path, src)
    pos_file = tmp_path / "state" / "positions" / "tail.json"
    fed = threading.Event()

    def feed() -> None:  # records keep arriving while the daemon runs, so the kill lands mid-stream
        for i in range(400, 1500, 50):
            write_lines(src, events[i:i + 50], mode="ab")
            time.sleep(0.04)
        fed.set()

    with Daemon(cfg, tmp_path) as d:
        kill_mid_feed(d, feed, pos_file, random.Random(seed).uniform(0, 0.4))
    assert fed.is_set()
    assert 0 < orjson.loads(pos_file.read_bytes())["position"] < src.stat().st_size
    closer = {"user_id": "closer", "ts": BASE_MS + 3_600_000, "amount": 0.0, "kind": "purchase", "page": "/"}
    write_lines(src, [*events[1500:], closer], mode="ab")
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: all(len(written(tmp_path)[k]) >= len(v) for k, v in want.items()), 60,
                   what="both branches' windows")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    # (restored from its checkpoint, or replayed from a commit that passed only records `clean` dropped)
    got = written(tmp_path)
    assert set(got["users"]) == set(want["users"]) and got["kinds"] == want["kinds"]
    for k, (n, spent) in want["users"].items():
        assert got["users"][k][0] == n and abs(got["users"][k][1] - spent) < 1e-6, k
    dead = tmp_path / "dead.jsonl"
    assert not dead.exists() or not dead.read_text().strip()


def window_config(tmp_path: Path, src: Path) -> Path:
    doc = {
        "pipeline": {"name": "wfan", "flow": "tail >> per_min >> [top, busiest, users]\ntop >> tops\n"
                                             "busiest >> counts"},
        "window": {"size": "1m", "lateness": "2s", "idle_timeout": "1h"},
        "sources": {"tail": {"type": "file", "path": str(src), "follow": True, "poll_interval": "20ms",
                             "batch_size": 100}},
        "stages": {
            "per_min": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()", "spent": "sum(amount)"}},
            "top": {"type": "aggregate", "aggregates": {"best": "argmax(user_id, spent)", "most": "max(spent)"}},
            "busiest": {"type": "aggregate", "aggregates": {"users": "count()", "n": "sum(n)"}},
        },
        "sinks": {name: {"type": "file", "path": str(tmp_path / name)} for name in ("users", "tops", "counts")},
        "state": {"checkpoint_interval": "600ms"},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms"},
    }
    return write_config(tmp_path / "wfan.toml", doc)


def window_reference(events: list[dict]) -> dict[str, dict]:
    per: dict = defaultdict(lambda: defaultdict(lambda: [0, 0.0]))
    for e in events:
        cell = per[iso_utc(e["ts"] - e["ts"] % MIN)][e["user_id"]]
        cell[0] += 1
        cell[1] += e["amount"]
    users = {(w, u): (c[0], c[1]) for w, by in per.items() for u, c in by.items()}
    tops = {}
    for w, by in per.items():
        most = max(c[1] for c in by.values())
        tops[w] = ([u for u, c in by.items() if c[1] == most], most)
    counts = {w: (len(by), sum(c[0] for c in by.values())) for w, by in per.items()}
    return {"users": users, "tops": tops, "counts": counts}


def window_written(tmp_path: Path) -> dict[str, dict]:
    out: dict[str, dict] = {"users": {}, "tops": {}, "counts": {}}
    for name in out:
        for rows in window_files(tmp_path / name).values():
            for r in rows:
                if name == "users":
                    out[name][(r["window_start"], r["user_id"])] = (r["n"], r["spent"])
                elif name == "tops":
                    out[name][r["window_start"]] = (r["best"], r["most"])
                else:
                    out[name][r["window_start"]] = (r["users"], r["n"])
    return out


def window_same(got: dict, want: dict) -> None:
    assert set(got["users"]) == set(want["users"])
    for k, (n, spent) in want["users"].items():
        assert got["users"][k][0] == n and abs(got["users"][k][1] - spent) < 1e-6, k
    assert got["counts"] == want["counts"]
    assert set(got["tops"]) == set(want["tops"])
    for w, (best, most) in want["tops"].items():
        assert sorted(got["tops"][w][0]) == sorted(best) and abs(got["tops"][w][1] - most) < 1e-6, w


def test_a_windows_rows_feeding_several_chained_aggregates(tmp_path):
    events = make_events(N, span_s=600, seed=41)
    src = tmp_path / "in.jsonl"
    write_lines(src, [*events, {"user_id": "closer", "ts": BASE_MS + 3_600_000, "amount": 0.0, "kind": "x",
                                "page": "/"}])
    want = window_reference(events)
    with Daemon(window_config(tmp_path, src), tmp_path) as d:
        wait_until(lambda: all(len(window_written(tmp_path)[k]) >= len(v) for k, v in want.items()), 60,
                   what="every branch's windows")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    window_same(window_written(tmp_path), want)
    assert d.stderr.count("window 2026-01-01T00:00:00Z .. 2026-01-01T00:01:00Z flushed") == 3  # once per branch
    import sqlite3

    with sqlite3.connect(tmp_path / "state" / "runs.db") as db:  # what the status page counts across restarts
        total = db.execute("SELECT value FROM totals WHERE name = 'windows_flushed'").fetchone()[0]
    assert total == len(want["counts"])  # each window once, not once per branch after the aggregate
    dead = tmp_path / "dead.jsonl"
    assert not dead.exists() or not dead.read_text().strip()


@pytest.mark.parametrize("seed", range(LOOPS))
def test_a_window_fan_out_killed_mid_stream_then_restarted_gives_the_uninterrupted_output(tmp_path, seed):
    events = make_events(N, span_s=600, seed=300 + seed)
    want = window_reference(events)
    src = tmp_path / "in.jsonl"
    write_lines(src, events[:400])
    cfg = window_config(tmp_path, src)
    pos_file = tmp_path / "state" / "positions" / "tail.json"
    fed = threading.Event()

    def feed() -> None:
        for i in range(400, 1500, 50):
            write_lines(src, events[i:i + 50], mode="ab")
            time.sleep(0.04)
        fed.set()

    with Daemon(cfg, tmp_path) as d:
        kill_mid_feed(d, feed, pos_file, random.Random(seed).uniform(0, 0.4))
    assert fed.is_set()
    assert 0 < orjson.loads(pos_file.read_bytes())["position"] < src.stat().st_size
    write_lines(src, [*events[1500:], {"user_id": "closer", "ts": BASE_MS + 3_600_000, "amount": 0.0, "kind": "x",
                                       "page": "/"}], mode="ab")
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: all(len(window_written(tmp_path)[k]) >= len(v) for k, v in want.items()), 60,
                   what="every branch's windows")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    assert "from its checkpoint" in d.stderr, d.stderr[-3000:]
    window_same(window_written(tmp_path), want)


def test_the_python_api_runs_both_fan_outs_to_the_end(tmp_path):
    from rtstream import Pipeline, SinkNode, SourceNode, StageNode

    events = make_events(1200, span_s=300, seed=43)
    src = tmp_path / "in.jsonl"
    write_lines(src, events)
    tail = SourceNode("tail", "file", path=str(src))
    clean = StageNode("clean", "map", call="tests.e2e.userfns:only_purchases")
    per_user = StageNode("per_user", "aggregate", key="user_id", aggregates={"n": "count()", "spent": "sum(amount)"})
    per_kind = StageNode("per_kind", "aggregate", key="kind", aggregates={"n": "count()"}, window={"size": "5m"})
    users, kinds = SinkNode("users", "file", path=str(tmp_path / "users")), SinkNode("kinds", "file", path=str(tmp_path / "kinds"))
    p = Pipeline([tail >> clean >> [per_user, per_kind], per_user >> users, per_kind >> kinds], window={"size": "1m"},
                 state={"checkpoint_interval": "1s"}, daemon={"state_dir": str(tmp_path / "state"), "log_level": "warning"})
    assert p.run() == 0
    got, want = written(tmp_path), reference(events)
    assert set(got["users"]) == set(want["users"]) and got["kinds"] == want["kinds"]
