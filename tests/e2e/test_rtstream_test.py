"""`rtstream test` (the CLI) and `rtstream.testing.run` (for users' own pytest): one run, nothing kept."""

from __future__ import annotations

import orjson

import rtstream.testing
from rtstream import Pipeline, SinkNode, SourceNode, StageNode
from tests.support import run_cli, write_config

RECORDS = [{"user_id": "u1", "amount": 5, "ts": "2026-11-24T12:01:00Z"},
           {"user_id": "u2", "amount": 1, "ts": "2026-11-24T12:02:00Z"},
           {"user_id": "u1", "amount": 7, "ts": "2026-11-24T12:03:00Z"},
           {"user_id": "u1", "amount": 2, "ts": "2026-11-24T12:06:00Z"}]


def _config(tmp_path):
    return write_config(tmp_path / "orders.toml", {
        "pipeline": {"name": "orders", "flow": "push >> per_user >> store"},
        "window": {"size": "5m", "lateness": "0s"},
        "sources": {"push": {"type": "http_ingest", "listen": "127.0.0.1:0"}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id",
                                "aggregates": {"n": "count()", "total": "sum(amount)"}}},
        "sinks": {"store": {"type": "sqlite", "path": "out/orders.db", "table": "totals"}},
    })


def test_cli_reads_input_prints_rows_and_leaves_sinks_and_state_alone(tmp_path):
    cfg = _config(tmp_path)
    (tmp_path / "in.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in RECORDS))
    res = run_cli("test", "-c", str(cfg), "--input", str(tmp_path / "in.jsonl"))
    assert res.returncode == 0, res.stderr
    rows = [orjson.loads(line) for line in res.stdout.splitlines()]
    assert rows == [
        {"window_start": "2026-11-24T12:00:00Z", "window_end": "2026-11-24T12:05:00Z", "user_id": "u1", "n": 2, "total": 12},
        {"window_start": "2026-11-24T12:00:00Z", "window_end": "2026-11-24T12:05:00Z", "user_id": "u2", "n": 1, "total": 1},
        {"window_start": "2026-11-24T12:05:00Z", "window_end": "2026-11-24T12:10:00Z", "user_id": "u1", "n": 1, "total": 2},
    ]
    assert "4 records in, 2 windows, 3 rows printed, 0 dead letters" in res.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "var").exists()

    res = run_cli("test", "-c", str(cfg), "--input", str(tmp_path / "in.jsonl"), "--sinks")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out" / "orders.db").exists()  # the sqlite path, beside the config


def test_cli_refuses_a_source_with_nothing_to_read(tmp_path):
    res = run_cli("test", "-c", str(_config(tmp_path)))
    assert res.returncode == 2
    assert "sources.push: a http_ingest source needs --input FILE (JSON lines) in a test run" in res.stderr
    res = run_cli("test", "-c", str(_config(tmp_path)), "--input", str(tmp_path / "missing.jsonl"))
    assert res.returncode == 2 and "no such file" in res.stderr


def double(records):
    return [{**r, "amount": r["amount"] * 2} for r in records]


def explode(records):
    raise ValueError("bad batch")


def test_testing_run_returns_rows_per_window_for_a_pipeline(tmp_path):
    flow = SourceNode("fetch", "file", path="unused.jsonl") >> StageNode("twice", "python", call=double) \
        >> SinkNode("out", "file", path=str(tmp_path / "never"))
    result = rtstream.testing.run(Pipeline(flow, name="t", window={"size": "5m", "lateness": "0s"}), RECORDS)
    assert result.exit_code == 0
    assert [r["amount"] for r in result.by_window["2026-11-24T12:00:00Z"]] == [10, 2, 14]
    assert [r["amount"] for r in result.by_window["2026-11-24T12:05:00Z"]] == [4]
    assert len(result.rows) == 4 and not (tmp_path / "never").exists()


def test_testing_run_reports_the_failing_component(tmp_path):
    flow = SourceNode("fetch", "file", path="unused.jsonl") >> StageNode("boom", "python", call=explode) \
        >> SinkNode("out", "stdout")
    result = rtstream.testing.run(Pipeline(flow, window={"size": "5m"}), RECORDS[:1])
    assert result.exit_code == 1
    assert result.failures and result.failures[0].startswith("boom failed on window 2026-11-24T12:00:00Z")
    assert "bad batch" in result.failures[0]


def test_the_example_test_of_the_docs_passes(tmp_path):
    import os
    import subprocess
    import sys

    from tests.support import ROOT

    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "docs" / "examples")],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 passed" in res.stdout


def test_a_polled_source_fetches_once(tmp_path):
    from aiohttp import web

    from tests.http_peers import ThreadedServer

    calls = []

    def app():
        async def events(request):
            calls.append(request.path_qs)
            return web.json_response({"items": [{"user_id": "u1", "ts": "2026-11-24T12:01:00Z"},
                                                {"user_id": "u2", "ts": "2026-11-24T12:02:00Z"}]})

        a = web.Application()
        a.router.add_get("/events", events)
        return a

    with ThreadedServer(app) as server:
        cfg = write_config(tmp_path / "poll.toml", {
            "pipeline": {"name": "poll", "flow": "api >> per_user >> store"},
            "window": {"size": "5m", "lateness": "0s"},
            "sources": {"api": {"type": "http_poll", "url": f"{server.url}/events", "interval": "1s",
                                "records": "/items"}},
            "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}}},
            "sinks": {"store": {"type": "sqlite", "path": "out.db", "table": "t"}},
        })
        res = run_cli("test", "-c", str(cfg))
    assert res.returncode == 0, res.stderr
    assert len(calls) == 1  # once, not every second
    rows = [orjson.loads(line) for line in res.stdout.splitlines()]
    assert [(r["window_start"], r["user_id"], r["n"]) for r in rows] == [
        ("2026-11-24T12:00:00Z", "u1", 1), ("2026-11-24T12:00:00Z", "u2", 1)]
    assert not (tmp_path / "out.db").exists()
