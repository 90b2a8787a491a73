"""Airflow-like failure semantics: retries, timeouts, dead_letter or halt after the last retry, alerts."""

from __future__ import annotations

import threading

import orjson
from aiohttp import web

from tests.data import make_events, write_lines
from tests.http_peers import ThreadedServer
from tests.support import read_jsonl, run_cli, window_files, write_config


def doc(tmp_path, stages, sinks, flow, **extra):
    write_lines(tmp_path / "in.jsonl", make_events(600, span_s=180, seed=71))
    d = {
        "pipeline": {"name": "faults", "flow": flow},
        "window": {"size": "1m", "lateness": "1s"},
        "sources": {"events": {"type": "file", "path": str(tmp_path / "in.jsonl")}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}}, **stages},
        "sinks": sinks,
        "defaults": {"retries": 2, "retry_delay": "20ms", "max_retry_delay": "50ms"},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state")},
    }
    d.update(extra)
    return write_config(tmp_path / "f.toml", d)


def env(tmp_path):
    (tmp_path / "flaky").mkdir(exist_ok=True)
    return {"FLAKY_STATE": str(tmp_path / "flaky")}


def history(tmp_path):
    from rtstream.runtime.run_history import RunHistory

    return RunHistory(tmp_path / "state" / "runs.db").windows()


def test_stage_retries_then_dead_letters_its_window_and_goes_on(tmp_path):
    cfg = doc(tmp_path, {"broken": {"type": "python", "call": "tests.faults.flaky:always_fails"}},
              {"out": {"type": "file", "path": str(tmp_path / "out")}}, "events >> per_user >> broken >> out")
    res = run_cli("run", "-c", str(cfg), env=env(tmp_path))
    assert res.returncode == 0, res.stderr
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert {d["reason"] for d in dead} == {"stage_error"} and {d["stage"] for d in dead} == {"broken"}
    assert {d["window_start"] for d in dead} == {"2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"}
    assert "RuntimeError: this stage never works" in dead[0]["detail"]
    runs = history(tmp_path)
    assert all(w["components"]["broken"]["state"] == "dead_lettered" for w in runs)
    assert all(w["components"]["broken"]["attempts"] == 3 for w in runs)  # retries = 2
    assert window_files(tmp_path / "out") == {}


def test_stage_that_recovers_within_its_retries_loses_nothing(tmp_path):
    cfg = doc(tmp_path, {"flaky": {"type": "python", "call": "tests.faults.flaky:fails_twice", "retries": 3}},
              {"out": {"type": "file", "path": str(tmp_path / "out")}}, "events >> per_user >> flaky >> out")
    res = run_cli("run", "-c", str(cfg), env=env(tmp_path))
    assert res.returncode == 0, res.stderr
    assert read_jsonl(tmp_path / "dead.jsonl") == []
    rows = [r for rs in window_files(tmp_path / "out").values() for r in rs]
    assert sum(r["n"] for r in rows) == 600
    assert history(tmp_path)[-1]["components"]["flaky"]["state"] == "success"


def test_sink_timeout_with_dead_letter_policy(tmp_path):
    sinks = {"slow": {"type": "python", "call": "tests.faults.flaky:slow_sink", "timeout": "100ms",
                      "retries": 1, "on_failure": "dead_letter"}}
    cfg = doc(tmp_path, {}, sinks, "events >> per_user >> slow")
    res = run_cli("run", "-c", str(cfg), env={**env(tmp_path), "SLOW_SINK_SECONDS": "1"})
    assert res.returncode == 0, res.stderr
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert {(d["reason"], d["stage"], d["detail"]) for d in dead} == {("sink_failed", "slow", "timed out after 0.1s")}
    assert sum(d["value"]["n"] for d in dead) == 600  # every row of every window, none lost


class AlertReceiver:
    def __init__(self):
        self.events = []
        self.lock = threading.Lock()

    def app(self):
        app = web.Application()

        async def handle(request):
            with self.lock:
                self.events.append(orjson.loads(await request.read()))
            return web.Response(status=204)

        app.router.add_post("/alert", handle)
        return app


def test_halting_sink_keeps_retrying_alerts_on_failure_and_on_recovery(tmp_path):
    receiver = AlertReceiver()
    with ThreadedServer(receiver.app) as server:
        sinks = {"db": {"type": "python", "call": "tests.faults.flaky:sink_fails_three_times", "retries": 1}}
        cfg = doc(tmp_path, {}, sinks, "events >> per_user >> db", alert={"url": f"{server.url}/alert"})
        res = run_cli("run", "-c", str(cfg), env=env(tmp_path))
        assert res.returncode == 0, res.stderr
    assert read_jsonl(tmp_path / "dead.jsonl") == []  # halt: nothing skipped
    assert sum(r["n"] for r in read_jsonl(tmp_path / "flaky" / "stored.jsonl")) == 600
    assert [(e["event"], e["component"], e["window_start"]) for e in receiver.events] == [
        ("failed", "db", "2026-01-01T00:00:00Z"), ("recovered", "db", "2026-01-01T00:00:00Z")]
    assert receiver.events[0]["error"] == "ConnectionError: database is restarting"
    assert receiver.events[0]["attempts"] == 2 and receiver.events[1]["attempts"] == 4
    assert receiver.events[0]["pipeline"] == "faults"
