"""Sinks reject rows, not halt on them: a row a sink can never write because of what it holds goes
to the dead letters with the sink's reason, and the rest of its window is written; session keys
never name a path outside the file sink's folder, nor share a file."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import uuid

import asyncpg
import orjson

from tests.data import BASE_MS, make_events, write_lines
from tests.reference import iso, tumbling_truth
from tests.support import Daemon, read_jsonl, run_cli, wait_until, write_config

KEYS = ["a/b", "..", ".", "a/../../../x", "x" * 5000, "a\x00b", "é/ü ✓", "", "~", "u1", "a_b", 5, "5", "con",
        "-rf", "a" * 64, "a" * 65, "\\..\\evil", "/abs/path"]


def session_doc(tmp_path, events_path, sink_dir):
    return {
        "pipeline": {"name": "keys", "flow": "events >> per_user >> out"},
        "window": {"type": "session", "gap": "1m", "lateness": "1s"},
        "sources": {"events": {"type": "file", "path": str(events_path)}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"events": "count()"}}},
        "sinks": {"out": {"type": "file", "path": str(sink_dir)}},
        "defaults": {"retry_delay": "50ms", "max_retry_delay": "200ms"},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state")},
    }


def test_every_session_key_gets_its_own_file_inside_the_folder(tmp_path):
    events = []
    for i, key in enumerate(KEYS):  # key i: i+1 records, ten seconds apart: one session
        events += [{"user_id": key, "ts": BASE_MS + 10_000 * (i + j), "amount": 1} for j in range(i + 1)]
    src = tmp_path / "in.jsonl"
    write_lines(src, events)
    sink_dir = tmp_path / "box" / "out"
    sink_dir.mkdir(parents=True)
    (tmp_path / "box" / "sibling").mkdir()  # a folder beside the sink's, and folders inside it that a
    for i in range(len(KEYS)):  # key with separators could walk through, as the old names did
        (sink_dir / f"{iso(BASE_MS + 10_000 * i).replace(':', '-')}.a").mkdir()
    before = {p for p in tmp_path.parent.rglob("*") if tmp_path not in p.parents and p != tmp_path}
    res = run_cli("run", "-c", str(write_config(tmp_path / "k.toml", session_doc(tmp_path, src, sink_dir))))
    assert res.returncode == 0, res.stderr[-3000:]
    assert read_jsonl(tmp_path / "dead.jsonl") == []
    assert "failed on window" not in res.stderr  # never halted, never retried
    files = sorted(p for p in sink_dir.iterdir() if p.is_file())
    assert len(files) == len(KEYS)  # one file per key: none shared, none missing
    by_key = {}
    for f in files:
        assert len(f.name.encode()) < 128 and "/" not in f.name and f.name.endswith(".jsonl")
        (row,) = read_jsonl(f)
        by_key[orjson.dumps(row["user_id"])] = (row, f.name)
    assert set(by_key) == {orjson.dumps(k) for k in KEYS}
    for i, key in enumerate(KEYS):
        row, name = by_key[orjson.dumps(key)]
        assert row["events"] == i + 1 and row["window_start"] == iso(BASE_MS + 10_000 * i)
        assert name.startswith(iso(BASE_MS + 10_000 * i).replace(":", "-") + ".")
    assert by_key[b'"u1"'][1] == "2026-01-01T00-01-30Z.u1.jsonl"  # a plain key is spelled as itself
    assert by_key[b'"a/b"'][1].startswith("2026-01-01T00-00-00Z.a_b~")
    assert by_key[b'"a_b"'][1] == "2026-01-01T00-01-40Z.a_b.jsonl"  # and is not the file of "a/b"
    # nothing was written anywhere else: not beside the sink's folder, not in the folders inside it,
    # not above the test's folder
    assert all(not any(d.iterdir()) for d in sink_dir.iterdir() if d.is_dir())
    assert not any((tmp_path / "box" / "sibling").iterdir())
    assert sorted(p.name for p in (tmp_path / "box").iterdir()) == ["out", "sibling"]
    after = {p for p in tmp_path.parent.rglob("*") if tmp_path not in p.parents and p != tmp_path}
    assert after - before == set()

    # a second run over the same input rewrites the same files (idempotent names), nothing more
    res = run_cli("run", "-c", str(tmp_path / "k.toml"))
    assert res.returncode == 0
    assert sorted(p for p in sink_dir.iterdir() if p.is_file()) == files


def test_a_row_no_json_writer_takes_is_rejected_by_each_sink_and_the_rest_is_written(tmp_path):
    events = make_events(600, span_s=180, seed=151, users=10)
    write_lines(tmp_path / "in.jsonl", events)
    doc = {
        "pipeline": {"name": "huge", "flow": "events >> per_user >> huge >> [out, show, db]"},
        "window": {"size": "1m", "lateness": "1s"},
        "sources": {"events": {"type": "file", "path": str(tmp_path / "in.jsonl")}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"events": "count()"}},
                   "huge": {"type": "python", "call": "tests.faults.rowfns:one_huge_int"}},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out")},
                  "show": {"type": "stdout", "format": "json"},
                  "db": {"type": "sqlite", "path": str(tmp_path / "out.db"), "table": "t",
                         "key_columns": ["window_start", "user_id"]}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state")},
    }
    res = run_cli("run", "-c", str(write_config(tmp_path / "h.toml", doc)))
    assert res.returncode == 0, res.stderr[-3000:]
    truth = tumbling_truth(events, 60, "user_id")
    good = {k: v["events"] for k, v in truth.items() if k[1] != "u7"}
    u7_windows = {k[0] for k in truth if k[1] == "u7"}
    assert len(u7_windows) == 3
    dead = read_jsonl(tmp_path / "dead.jsonl")
    for sink in ("out", "show", "db"):
        mine = [d for d in dead if d["stage"] == sink]
        assert {d["window_start"] for d in mine} == u7_windows and len(mine) == 3, sink
        assert {d["reason"] for d in mine} == {"sink_rejected"}
        assert all(d["value"]["user_id"] == "u7" if isinstance(d["value"], dict) else '"u7"' in d["value"]
                   for d in mine)
    assert {d["detail"] for d in dead if d["stage"] in ("out", "show")} == {
        "row cannot be encoded as JSON: Integer exceeds 64-bit range"}
    assert all("OverflowError" in d["detail"] for d in dead if d["stage"] == "db")
    files = [r for p in (tmp_path / "out").glob("*.jsonl") for r in read_jsonl(p)]
    assert {(r["window_start"], r["user_id"]): r["events"] for r in files} == good
    printed = [orjson.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert {(r["window_start"], r["user_id"]): r["events"] for r in printed} == good
    db = sqlite3.connect(tmp_path / "out.db")
    assert {(s, u): n for s, u, n in db.execute("select window_start, user_id, events from t")} == good


# --- PostgreSQL ---------------------------------------------------------------------------------
async def fetch(dsn, sql):
    conn = await asyncpg.connect(dsn)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


def test_a_nul_in_a_postgres_text_value_is_rejected_and_the_rest_goes_on(tmp_path, postgres):
    table = f"t_{uuid.uuid4().hex[:10]}"
    events = make_events(900, span_s=300, seed=152, users=12)
    events[3]["user_id"] = "bad\x00user"  # first window: a key with a NUL among good ones
    events[500]["user_id"] = "worse\x00"  # and one in a later window
    closer = {"user_id": "closer", "ts": BASE_MS + 3_600_000, "amount": 0}
    src = tmp_path / "in.jsonl"
    write_lines(src, [*events, closer])
    closer_at = src.read_bytes().rindex(b'{"user_id":"closer"')
    doc = {
        "pipeline": {"name": "pgnul", "flow": "events >> per_user >> db"},
        "window": {"size": "1m", "lateness": "1s", "idle_timeout": "1h"},
        "sources": {"events": {"type": "file", "path": str(src), "follow": True, "poll_interval": "50ms"}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id",
                                "aggregates": {"events": "count()", "spent": "sum(amount)"}}},
        "sinks": {"db": {"type": "postgres", "dsn": "${TEST_DATABASE_URL}", "table": table}},
        "defaults": {"retry_delay": "50ms", "max_retry_delay": "200ms"},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms"},
    }
    pos_file = tmp_path / "state" / "positions" / "events.json"
    truth = tumbling_truth(events, 60, "user_id")
    good = {k: v["events"] for k, v in truth.items() if "\x00" not in k[1]}

    def stored():
        try:
            rows = asyncio.run(fetch(postgres, f"select window_start, user_id, events from {table}"))
        except asyncpg.UndefinedTableError:
            return {}
        return {(s.strftime("%Y-%m-%dT%H:%M:%SZ"), u): n for s, u, n in rows}

    def committed():
        return pos_file.exists() and orjson.loads(pos_file.read_bytes())["position"]

    cfg = write_config(tmp_path / "pg.toml", doc)
    with Daemon(cfg, tmp_path, env={"TEST_DATABASE_URL": postgres}) as d:
        wait_until(lambda: stored() == good, 60, interval=0.3, what="every good row in the table")
        # the commit goes on to the first record of the one window still open (the closer's)
        wait_until(lambda: committed() == closer_at, 30, what="the commit past every written window")
        assert d.proc.poll() is None
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert sorted((d["reason"], d["stage"], d["value"]["user_id"]) for d in dead) == [
        ("sink_rejected", "db", "bad\x00user"), ("sink_rejected", "db", "worse\x00")]
    assert all(d["detail"].startswith("column 'user_id' (text) cannot hold") and "NUL" in d["detail"] for d in dead)
    assert "failed on window" not in d.stderr  # rejected, not retried
    assert os.path.getsize(src) > closer_at


async def _server_side_refusals(dsn, table):
    from rtstream.model.errors import RowsRejected
    from rtstream.model.window import Window
    from rtstream.runtime.context import Context
    from rtstream.sinks.postgres import PostgresConfig, PostgresSink

    conn = await asyncpg.connect(dsn)
    await conn.execute(f"CREATE TABLE {table} (window_start timestamptz, k varchar(5), n bigint CHECK (n >= 0), "
                       f"doc jsonb, PRIMARY KEY (window_start, k))")
    config = PostgresConfig.model_validate({"type": "postgres", "dsn": dsn, "table": table})
    sink = PostgresSink("db", config, Context(pipeline="t", state_dir=None, key_fields=["k"]))  # type: ignore[arg-type]
    await sink.start()
    start = "2026-01-01T00:00:00Z"
    rows = [{"window_start": start, "k": f"k{i}", "n": i, "doc": {"i": i}} for i in range(6)]
    rows[1]["k"] = "much too long"  # varchar(5): only the server knows
    rows[2]["n"] = -1  # the CHECK constraint
    rows[3]["doc"] = {"note": "a NUL \x00 inside"}  # jsonb cannot hold it: found before the write
    rows[4]["n"] = 2**70  # beyond bigint: found before the write
    try:
        await sink.write(Window(1_767_225_600_000, 1_767_225_660_000), rows)
        raise AssertionError("expected RowsRejected")
    except RowsRejected as exc:
        reasons = {r[0]["k"]: why for r, why in exc.rejected}
    stored = {r["k"]: r["n"] for r in await conn.fetch(f"select k, n from {table}")}
    await sink.close()
    await conn.close()
    return reasons, stored


def test_rows_postgres_itself_refuses_are_found_row_by_row_and_the_rest_written(postgres):
    reasons, stored = asyncio.run(_server_side_refusals(postgres, f"t_{uuid.uuid4().hex[:10]}"))
    assert stored == {"k0": 0, "k5": 5}
    assert set(reasons) == {"much too long", "k2", "k3", "k4"}
    assert reasons["much too long"].startswith("postgres refused the row: StringDataRightTruncationError")
    assert reasons["k2"].startswith("postgres refused the row: CheckViolationError")
    assert "NUL" in reasons["k3"] and reasons["k3"].startswith("column 'doc' (jsonb) cannot hold")
    assert reasons["k4"] == f"column 'n' (bigint) cannot hold {2**70} from field 'n': out of range for a 64-bit integer"
