"""The real daemon on finite files: every output row against an independent computation."""

from __future__ import annotations

import sqlite3

import pytest

from rtstream.model.window import iso_utc
from tests.data import BASE_MS, make_events, write_lines
from tests.reference import iso, session_truth, tumbling_truth
from tests.support import read_jsonl, run_cli, window_files, write_config

MALFORMED = [
    (b'{"user_id": "u1", "ts": ', "decode"),
    (b"[1, 2, 3]", "decode"),
    (b'{"user_id": "u1", "amount": 3}', "no_time"),
    (b'{"user_id": "u1", "ts": "yesterday", "amount": 3}', "no_time"),
    (b'{"user_id": "u1", "ts": 1767225600000, "amount": "12"}', "invalid"),
    (b'{"ts": 1767225600000, "amount": 1}', "invalid"),
    (b'\xff\xfe{"user_id": 1}', "decode"),
]


def config(tmp_path, source, **extra):
    doc = {
        "pipeline": {"name": "finite", "flow": "events >> per_user >> [files, db]"},
        "window": {"size": "5m", "time": "event", "time_field": "ts", "lateness": "10s"},
        "sources": {"events": source},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id",
                                "aggregates": {"events": "count()", "spent": "sum(amount)", "biggest": "max(amount)"}}},
        "sinks": {"files": {"type": "file", "path": str(tmp_path / "out")},
                  "db": {"type": "sqlite", "path": str(tmp_path / "out.db"), "table": "activity"}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "log_format": "json"},
    }
    for k, v in extra.items():
        doc[k].update(v)
        doc[k] = {key: val for key, val in doc[k].items() if val is not None}  # None: leave the key out
    return write_config(tmp_path / "rt.toml", doc)


def assert_matches_truth(rows, truth):
    got = {(r["window_start"], r["user_id"]): r for r in rows}
    assert set(got) == set(truth)
    for key, want in truth.items():
        row = got[key]
        assert row["events"] == want["events"], key
        assert row["spent"] == pytest.approx(want["spent"]), key
        assert row["biggest"] == want["biggest"], key
        start_ms = int(__import__("datetime").datetime.fromisoformat(key[0]).timestamp() * 1000)
        assert row["window_end"] == iso(start_ms + 300_000)


def test_file_backfill_matches_reference_and_dead_letters_bad_lines(tmp_path, events):
    lines = [e for e in events]
    for i, (bad, _) in enumerate(MALFORMED):
        lines.insert(500 * (i + 1), bad)
    write_lines(tmp_path / "in.jsonl", lines)
    cfg = config(tmp_path, {"type": "file", "path": str(tmp_path / "in.jsonl")})
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 0, res.stderr
    truth = tumbling_truth(events, 300, "user_id")

    files = window_files(tmp_path / "out")
    assert len(files) == 6  # 30 minutes of five-minute windows
    assert_matches_truth([r for rows in files.values() for r in rows], truth)
    assert list(files) == [iso(BASE_MS + i * 300_000).replace(":", "-") + ".jsonl" for i in range(6)]

    db = sqlite3.connect(tmp_path / "out.db")
    db.row_factory = sqlite3.Row
    assert_matches_truth([dict(r) for r in db.execute("select * from activity")], truth)

    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert sorted(d["reason"] for d in dead) == sorted(r for _, r in MALFORMED)
    raw = (tmp_path / "in.jsonl").read_bytes()
    expected = dict(MALFORMED)
    for d in dead:
        assert d["source"] == "events" and d["partition"] == 0 and d["detail"]
        line = raw[d["offset"]:].split(b"\n", 1)[0]  # the offset points at the very line
        assert expected[line] == d["reason"]


def test_replay_of_the_same_input_leaves_the_same_output(tmp_path, events):
    write_lines(tmp_path / "in.jsonl", events)
    cfg = config(tmp_path, {"type": "file", "path": str(tmp_path / "in.jsonl")})
    assert run_cli("run", "-c", str(cfg)).returncode == 0
    first = window_files(tmp_path / "out")
    db = sqlite3.connect(tmp_path / "out.db")
    before = db.execute("select * from activity order by window_start, user_id").fetchall()
    assert run_cli("run", "-c", str(cfg)).returncode == 0
    assert window_files(tmp_path / "out") == first
    assert db.execute("select * from activity order by window_start, user_id").fetchall() == before


def test_late_records_go_to_dead_letters_with_their_window(tmp_path):
    events = make_events(3000, span_s=900)
    late = {"user_id": "late", "ts": BASE_MS + 5_000, "amount": 1.0}
    write_lines(tmp_path / "in.jsonl", events + [late])
    cfg = config(tmp_path, {"type": "file", "path": str(tmp_path / "in.jsonl"), "batch_size": 100})
    assert run_cli("run", "-c", str(cfg)).returncode == 0
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert [(d["reason"], d["window_start"], d["value"]["user_id"]) for d in dead] == [
        ("late", iso(BASE_MS), "late")]
    truth = tumbling_truth(events, 300, "user_id")
    assert_matches_truth([r for rows in window_files(tmp_path / "out").values() for r in rows], truth)


def test_python_and_map_stages_with_fan_out(tmp_path, events):
    events[10]["page"] = "/boom"
    events[10]["kind"] = "purchase"
    write_lines(tmp_path / "in.jsonl", events)
    doc = {
        "pipeline": {"name": "py", "flow": "events >> boom >> purchases >> per_user >> top >> [files, show]"},
        "window": {"size": "10m"},
        "sources": {"events": {"type": "file", "path": str(tmp_path / "in.jsonl")}},
        "stages": {"boom": {"type": "map", "call": "tests.e2e.userfns:explode_on_boom"},
                   "purchases": {"type": "map", "call": "tests.e2e.userfns:only_purchases"},
                   "per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"spent": "sum(amount)"}},
                   "top": {"type": "python", "call": "tests.e2e.userfns:top_spenders"}},
        "sinks": {"files": {"type": "file", "path": str(tmp_path / "out")}, "show": {"type": "stdout", "format": "json"}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state")},
    }
    res = run_cli("run", "-c", str(write_config(tmp_path / "rt.toml", doc)))
    assert res.returncode == 0, res.stderr
    good = [e for i, e in enumerate(events) if i != 10 and e["kind"] == "purchase"]
    spent: dict = {}
    for e in good:
        w = iso((e["ts"] // 600_000) * 600_000)
        spent.setdefault(w, {}).setdefault(e["user_id"], 0.0)
        spent[w][e["user_id"]] += e["amount"]
    files = window_files(tmp_path / "out")
    assert len(files) == 3
    for rows in files.values():
        w = rows[0]["window_start"]
        want = sorted(spent[w].items(), key=lambda kv: (-round(kv[1], 6), kv[0]))[:3]
        assert [r["user_id"] for r in rows] == [u for u, _ in want]
        assert [r["rank"] for r in rows] == [1, 2, 3]
    assert [d["stage"] for d in read_jsonl(tmp_path / "dead.jsonl")] == ["boom"]
    assert res.stdout.count('"rank":1') == 3


def test_generator_finite_run_python_api(tmp_path):
    from rtstream import Pipeline, SinkNode, SourceNode, StageNode

    gen = SourceNode("gen", "generator", count=3000, rate=10, realtime=False, seed=3)
    agg = StageNode("agg", "aggregate", key="kind", aggregates={"n": "count()"})
    out = SinkNode("out", "file", path=str(tmp_path / "out"))
    code = Pipeline(gen >> agg >> out, name="api", window={"size": "1m"},
                    daemon={"state_dir": str(tmp_path / "s")}, state={"checkpoint_interval": "1m"}).run()
    assert code == 0
    assert (tmp_path / "s" / "checkpoints.db").exists()  # the state section reached the daemon
    rows = [r for rs in window_files(tmp_path / "out").values() for r in rs]
    assert sum(r["n"] for r in rows) == 3000
    assert len(window_files(tmp_path / "out")) == 5  # 300 s of event time at 10/s


def test_session_windows_match_reference(tmp_path):
    # sparse users, so sessions start, stop and (out of order within lateness) merge
    events = make_events(2000, span_s=3600, users=60, seed=11)
    for e in events[::7]:
        e["ts"] -= 20_000
    write_lines(tmp_path / "in.jsonl", events)
    cfg = config(tmp_path, {"type": "file", "path": str(tmp_path / "in.jsonl"), "batch_size": 50},
                 window={"type": "session", "gap": "2m", "lateness": "30s", "size": None})
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 0, res.stderr
    truth = session_truth(events, 120_000, "user_id")
    db = sqlite3.connect(tmp_path / "out.db")
    got = db.execute("select window_start, window_end, user_id, events, spent from activity").fetchall()
    want = {(iso_utc(s), iso_utc(e), u): (n, pytest.approx(v)) for s, e, u, n, v in truth}
    assert {(s, e, u): (n, v) for s, e, u, n, v in got} == want
    assert read_jsonl(tmp_path / "dead.jsonl") == []
    files = window_files(tmp_path / "out")  # one file per session: start and key
    assert len(files) == len(truth)
    assert f"{iso_utc(truth[0][0]).replace(':', '-')}.{truth[0][2]}.jsonl" in files
