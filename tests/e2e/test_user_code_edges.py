"""User code cannot end the daemon: sys.exit(), KeyboardInterrupt or any BaseException raised by a
python stage, a map, a python sink or at a module's import is that record's or window's failure."""

from __future__ import annotations

import textwrap
from pathlib import Path

import orjson

from tests.data import BASE_MS, make_events, write_lines
from tests.support import read_jsonl, run_cli, window_files, write_config

USER_MODULE = '''
import sys


class Escape(BaseException):
    pass


def exit_on_second_window(window):
    if window.start_ms == {second}:
        sys.exit(0)
    return [{{"records": len(window.records)}}]


def escape_on_third_window(window):
    if window.start_ms == {third}:
        raise Escape("out of here")
    return None


def interrupt_on_marked(record):
    if record.get("mark") == "interrupt":
        raise KeyboardInterrupt
    if record.get("mark") == "escape":
        raise Escape("out of here")
    if record.get("mark") == "exit":
        sys.exit(3)
    return record


def ints(records):
    return [1, 2, 3]


CALLS = []


def exit_on_first_write(rows):
    CALLS.append(len(rows))
    if len(CALLS) == 1:
        sys.exit(0)
    with open({written!r}, "ab") as fh:
        fh.write(b"%d\\n" % len(rows))
'''


def _setup(tmp_path: Path, stages: dict, flow: str, sinks: dict | None = None) -> tuple[Path, list[dict]]:
    events = make_events(3000, span_s=600, seed=5)  # ten 1-minute windows
    write_lines(tmp_path / "in.jsonl", events)
    (tmp_path / "userfns_edges.py").write_text(USER_MODULE.format(
        second=BASE_MS + 60_000, third=BASE_MS + 120_000, written=str(tmp_path / "written.txt")))
    doc = {
        "pipeline": {"name": "user", "flow": flow},
        "window": {"size": "1m"},
        "sources": {"events": {"type": "file", "path": str(tmp_path / "in.jsonl")}},
        "stages": stages,
        "sinks": sinks or {"files": {"type": "file", "path": str(tmp_path / "out")}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state")},
    }
    return write_config(tmp_path / "rt.toml", doc), events


def _per_minute(events: list[dict]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for e in events:
        start = (e["ts"] - BASE_MS) // 60_000
        counts[start] = counts.get(start, 0) + 1
    return counts


def test_sys_exit_and_a_base_exception_in_a_window_stage_fail_only_their_window(tmp_path):
    cfg, events = _setup(tmp_path, {
        "first": {"type": "python", "call": "userfns_edges:exit_on_second_window"},
        "second": {"type": "python", "call": "userfns_edges:escape_on_third_window", "retries": 0}},
        "events >> first >> second >> files")
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr and "ExceptionGroup" not in res.stderr
    files = window_files(tmp_path / "out")
    assert len(files) == 8  # ten windows, the second and the third dead-lettered
    counts = _per_minute(events)
    assert sorted(r[0]["records"] for r in files.values()) == sorted(
        n for minute, n in counts.items() if minute not in (1, 2))
    dead = read_jsonl(tmp_path / "dead.jsonl")
    by_stage = {d["stage"] for d in dead}
    assert by_stage == {"first", "second"}
    exits = [d for d in dead if d["stage"] == "first"]
    assert len(exits) == counts[1]  # every record of the window, each with the reason
    assert all("raised SystemExit(0), which cannot end the daemon" in d["detail"] for d in exits)
    assert all("raised Escape('out of here')" in d["detail"] for d in dead if d["stage"] == "second")
    assert all(d["source"] == "events" and isinstance(d["offset"], int) for d in dead)


def test_keyboard_interrupt_exit_and_base_exception_in_a_map_dead_letter_their_record(tmp_path):
    cfg, events = _setup(tmp_path, {"marked": {"type": "map", "call": "userfns_edges:interrupt_on_marked"},
                                    "count": {"type": "aggregate", "aggregates": {"n": "count()"}}},
                         "events >> marked >> count >> files")
    for i, mark in ((5, "interrupt"), (400, "escape"), (900, "exit")):
        events[i]["mark"] = mark
    write_lines(tmp_path / "in.jsonl", events)
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    rows = [r for rs in window_files(tmp_path / "out").values() for r in rs]
    assert sum(r["n"] for r in rows) == len(events) - 3
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert [(d["reason"], d["stage"], d["value"].get("mark")) for d in dead] == [
        ("stage_error", "marked", "interrupt"), ("stage_error", "marked", "escape"), ("stage_error", "marked", "exit")]
    assert "raised KeyboardInterrupt()" in dead[0]["detail"]
    assert "raised SystemExit(3)" in dead[2]["detail"]
    offsets = [d["offset"] for d in dead]
    lines = (tmp_path / "in.jsonl").read_bytes().splitlines(keepends=True)
    assert offsets == [sum(len(x) for x in lines[:i]) for i in (5, 400, 900)] or offsets == [5, 400, 900]


def test_sys_exit_in_a_python_sink_is_a_failed_write_that_is_retried(tmp_path):
    cfg, events = _setup(tmp_path, {}, "events >> py", sinks={
        "py": {"type": "python", "call": "userfns_edges:exit_on_first_write", "retry_delay": "10ms"}})
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 0, res.stderr
    assert "raised SystemExit(0), which cannot end the daemon" in res.stderr
    written = [int(x) for x in (tmp_path / "written.txt").read_text().split()]
    assert sorted(written) == sorted(_per_minute(events).values())  # every window, the first after a retry


def test_a_window_stage_returning_the_wrong_shape_says_what_it_returned(tmp_path):
    # each window is tried three times (the default policy); short backoffs, or ten windows wait 30 s
    cfg, events = _setup(tmp_path, {"bad": {"type": "python", "call": "userfns_edges:ints", "retry_delay": "10ms"}},
                         "events >> bad >> files")
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 0, res.stderr
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert len(dead) == len(events)
    assert {d["detail"] for d in dead} == {
        "StageError: bad: returned a list of int; expected a list of objects (dicts), one object (dict) or None"}
    assert "None/None@None" not in res.stderr
    # each letter names where its window's records begin in the source
    lines = (tmp_path / "in.jsonl").read_bytes().splitlines(keepends=True)
    starts = {}
    pos = 0
    for line in lines:
        minute = (orjson.loads(line)["ts"] - BASE_MS) // 60_000
        starts.setdefault(minute, pos)
        pos += len(line)
    for d in dead:
        minute = (d["value"]["ts"] - BASE_MS) // 60_000
        assert d["source"] == "events" and d["offset"] == starts[minute], d


def _module_config(tmp_path: Path, body: str) -> Path:
    (tmp_path / "dagmod_edges.py").write_text(textwrap.dedent(body))
    write_lines(tmp_path / "in.jsonl", make_events(50, span_s=60, seed=1))
    doc = {
        "pipeline": {"name": "imp", "flow": "events >> fn >> files"},
        "window": {"size": "1m"},
        "sources": {"events": {"type": "file", "path": str(tmp_path / "in.jsonl")}},
        "stages": {"fn": {"type": "python", "call": "dagmod_edges:fn"}},
        "sinks": {"files": {"type": "file", "path": str(tmp_path / "out")}},
        "daemon": {"state_dir": str(tmp_path / "state")},
    }
    return write_config(tmp_path / "rt.toml", doc)


def test_sys_exit_at_import_is_one_clear_line_exit_2_for_validate_and_test(tmp_path):
    cfg = _module_config(tmp_path, """
        import sys
        sys.exit(0)
        def fn(window):
            return None
    """)
    for command in ("validate", "test"):
        res = run_cli(command, "-c", str(cfg))
        assert res.returncode == 2, (command, res.stdout, res.stderr)
        assert "stages.fn.call" in res.stderr and "SystemExit(0)" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
        assert res.stdout == ""


def test_a_base_exception_at_import_is_refused_too(tmp_path):
    cfg = _module_config(tmp_path, """
        class Escape(BaseException):
            pass
        raise Escape("no")
    """)
    res = run_cli("validate", "-c", str(cfg))
    assert res.returncode == 2, res.stderr
    assert "stages.fn.call" in res.stderr and "Escape('no')" in res.stderr
    assert "Traceback" not in res.stderr


def test_prints_at_import_go_to_stderr_never_into_the_rows(tmp_path):
    cfg = _module_config(tmp_path, """
        print("hello from the top level")
        print('{"not": "a row"}')
        def fn(records):
            return [{"records": len(records)}]
    """)
    res = run_cli("test", "-c", str(cfg))
    assert res.returncode == 0, res.stderr
    rows = [orjson.loads(line) for line in res.stdout.splitlines() if line.strip()]
    assert [r["records"] for r in rows] == [50]
    assert "hello from the top level" in res.stderr
    res = run_cli("validate", "-c", str(cfg))
    assert res.returncode == 0 and "hello from the top level" not in res.stdout
