"""The daemon as a service: signals, crashes, restarts, bad configs."""

from __future__ import annotations

import signal
import time

import orjson

from tests.data import BASE_MS, make_events, write_lines
from tests.reference import tumbling_truth
from tests.support import Daemon, kill_after_a_commit, read_jsonl, run_cli, wait_until, window_files, write_config


def gen_config(tmp_path, **gen):
    doc = {
        "pipeline": {"name": "live", "flow": "gen >> agg >> [files, show]"},
        "window": {"size": "1s", "lateness": "0s", "idle_timeout": "1s"},
        "sources": {"gen": {"type": "generator", "rate": 2000, "realtime": True, **gen}},
        "stages": {"agg": {"type": "aggregate", "key": "kind", "aggregates": {"n": "count()"}}},
        "sinks": {"files": {"type": "file", "path": str(tmp_path / "out")}, "show": {"type": "stdout"}},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "200ms"},
    }
    return write_config(tmp_path / "gen.toml", doc)


def test_sigterm_on_endless_generator_exits_zero_and_leaves_whole_files(tmp_path):
    with Daemon(gen_config(tmp_path), tmp_path) as d:
        wait_until(lambda: len(list((tmp_path / "out").glob("*.jsonl"))) >= 3, 30, what="three windows flushed")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr
    assert not list((tmp_path / "out").glob(".*.tmp"))
    files = window_files(tmp_path / "out")
    for name in sorted(files)[1:]:  # the first began when the generator did, mid-second
        assert sum(r["n"] for r in files[name]) == 2000, name  # every later window is whole: 1 s at 2000/s
    assert "SIGTERM: stopping sources" in d.stderr
    saved = orjson.loads((tmp_path / "state" / "positions" / "gen.json").read_bytes())
    assert saved["position"] > 0


def test_restart_resumes_from_the_commit_and_rebuilds_the_same_windows(tmp_path):
    cfg = gen_config(tmp_path, start="2026-01-01T00:00:00Z", realtime=False, batch_size=500)
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: len(list((tmp_path / "out").glob("*.jsonl"))) >= 5, 30, what="windows")
        d.kill()  # SIGKILL: no chance to commit on the way out
    pos_file = tmp_path / "state" / "positions" / "gen.json"
    first = orjson.loads(pos_file.read_bytes())["position"]
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: orjson.loads(pos_file.read_bytes())["position"] > first + 10_000, 30, what="progress")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
    files = window_files(tmp_path / "out")
    names = sorted(files)
    # every window that was written is whole, including the one being built when the process died
    for name in names:
        assert sum(r["n"] for r in files[name]) == 2000, name
    assert names[0].startswith("2026-01-01T00-00-00Z")
    assert len(names) == len(set(names)) >= 10


def test_follow_mode_sigkill_and_restart_loses_nothing(tmp_path):
    events = make_events(4000, span_s=600, seed=11)
    src = tmp_path / "in.jsonl"
    write_lines(src, events[:2500])
    doc = {
        "pipeline": {"name": "tail", "flow": "tail >> agg >> files"},
        "window": {"size": "1m", "lateness": "2s", "idle_timeout": "1h"},
        "sources": {"tail": {"type": "file", "path": str(src), "follow": True, "poll_interval": "50ms",
                             "batch_size": 100}},
        "stages": {"agg": {"type": "aggregate", "key": "user_id",
                           "aggregates": {"events": "count()", "spent": "sum(amount)", "biggest": "max(amount)"}}},
        "sinks": {"files": {"type": "file", "path": str(tmp_path / "out")}},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms"},
    }
    cfg = write_config(tmp_path / "tail.toml", doc)
    committed = kill_after_a_commit(cfg, tmp_path)
    assert 0 < committed < src.stat().st_size  # the open window's records were not committed
    write_lines(src, events[2500:], mode="ab")
    # a record far ahead closes every window of the data
    write_lines(src, [{"user_id": "closer", "ts": BASE_MS + 3_600_000, "amount": 0.0}], mode="ab")
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: len(list((tmp_path / "out").glob("*.jsonl"))) >= 10, 30, what="all ten windows")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
    truth = tumbling_truth(events, 60, "user_id")
    got = {(r["window_start"], r["user_id"]): r for rows in window_files(tmp_path / "out").values() for r in rows}
    assert set(got) == set(truth)
    for key, want in truth.items():
        assert got[key]["events"] == want["events"]
        assert abs(got[key]["spent"] - want["spent"]) < 1e-6


def test_quiet_stream_closes_its_window_on_the_wall_clock(tmp_path):
    src = tmp_path / "in.jsonl"
    now_ms = int(time.time() * 1000)
    write_lines(src, [{"user_id": "a", "ts": now_ms - 3000, "amount": 1.0}])
    doc = {
        "pipeline": {"name": "quiet", "flow": "tail >> agg >> files"},
        "window": {"size": "1s", "lateness": "0s", "idle_timeout": "500ms"},
        "sources": {"tail": {"type": "file", "path": str(src), "follow": True, "poll_interval": "50ms"}},
        "stages": {"agg": {"type": "aggregate", "aggregates": {"n": "count()"}}},
        "sinks": {"files": {"type": "file", "path": str(tmp_path / "out")}},
        "daemon": {"state_dir": str(tmp_path / "state")},
    }
    with Daemon(write_config(tmp_path / "q.toml", doc), tmp_path) as d:
        files = wait_until(lambda: window_files(tmp_path / "out"), 15, what="the idle window to close")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
    assert [r["n"] for rows in files.values() for r in rows] == [1]


def test_bad_config_exits_2_naming_the_key(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[pipeline]\nflow = "a >> b"\n[window]\nsize = "five minutes"\n'
                   '[sources.a]\ntype = "generator"\nrat = 5\n[sinks.b]\ntype = "stdout"\n')
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 2
    assert "window.size: invalid duration 'five minutes'" in res.stderr
    assert "sources.a.rat: unknown key" in res.stderr
    assert run_cli("validate", "-c", str(cfg)).returncode == 2
    res = run_cli("run", "-c", str(tmp_path / "missing.toml"))
    assert res.returncode == 2 and "cannot read config" in res.stderr


def test_validate_prints_the_resolved_default_pipeline():
    res = run_cli("validate", "-c", "config/rtstream.toml", "--set", "window.schedule=*/10 * * * *")
    assert res.returncode == 0, res.stderr
    assert "flow       clicks >> per_user >> [store, show]" in res.stdout
    assert "tumbling 10m" in res.stdout
    assert run_cli("--version").stdout.startswith("rtstream ")


def test_component_crash_exits_nonzero_naming_it(tmp_path):
    doc = {
        "pipeline": {"name": "crash", "flow": "tail >> files"},
        "window": {"size": "1m"},
        "sources": {"tail": {"type": "file", "path": str(tmp_path / "missing.jsonl")}},
        "sinks": {"files": {"type": "file", "path": str(tmp_path / "out")}},
        "daemon": {"state_dir": str(tmp_path / "state")},
    }
    res = run_cli("run", "-c", str(write_config(tmp_path / "c.toml", doc)))
    assert res.returncode == 1
    assert "tail" in res.stderr and "no such file" in res.stderr


def test_dead_letters_default_under_state_dir(tmp_path):
    write_lines(tmp_path / "in.jsonl", [b"not json", {"ts": BASE_MS, "x": 1}])
    doc = {
        "pipeline": {"name": "dl", "flow": "f >> out"},
        "window": {"size": "1m"},
        "sources": {"f": {"type": "file", "path": str(tmp_path / "in.jsonl")}},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out")}},
        "daemon": {"state_dir": str(tmp_path / "state")},
    }
    assert run_cli("run", "-c", str(write_config(tmp_path / "d.toml", doc))).returncode == 0
    assert [d["reason"] for d in read_jsonl(tmp_path / "state" / "dead_letters.jsonl")] == ["decode"]
    rows = [r for rs in window_files(tmp_path / "out").values() for r in rs]
    assert rows == [{"ts": BASE_MS, "x": 1, "window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-01T00:01:00Z"}]


def test_sighup_applies_live_settings_and_refuses_the_rest(tmp_path):
    cfg = gen_config(tmp_path)
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: "pipeline live running" in d.stderr, 30, what="start")
        cfg.write_text(cfg.read_text().replace('commit_interval = "200ms"',
                                               'commit_interval = "200ms"\nlog_level = "warning"'))
        d.signal(signal.SIGHUP)
        wait_until(lambda: "reload applied: daemon.log_level = warning" in d.stderr, 15, what="the reload")
        cfg.write_text(cfg.read_text().replace('size = "1s"', 'size = "2s"'))
        d.signal(signal.SIGHUP)
        wait_until(lambda: "reload refused: window.size cannot change while running" in d.stderr, 15,
                   what="the refusal")
        cfg.write_text(cfg.read_text().replace('size = "2s"', 'size = "two"'))
        d.signal(signal.SIGHUP)
        wait_until(lambda: "reload refused, the config has problems" in d.stderr, 15, what="the bad config")
        assert d.proc.poll() is None
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
