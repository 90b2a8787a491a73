"""A sink fed by several branches, through the real daemon: `tail >> per_min >> out; tail >> per_5min
>> out`. The sink holds each branch's windows (the rows that branch makes, plus `branch`), checked
against an independent reference; a SIGKILL mid-stream and a restart leave the same output; a shape
the sink cannot tell apart is refused at validate with one line (exit 2)."""

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
from tests.support import LOOPS, Daemon, run_cli, status, wait_until, window_files, write_config

MIN = 60_000
N = 3000


FLOW = "tail >> per_min >> out\ntail >> per_5min >> out"


def config(tmp_path: Path, src: Path, port: int | None = None, flow: str = FLOW, stages: dict | None = None) -> Path:
    doc = {
        "pipeline": {"name": "shared", "flow": flow},
        "window": {"size": "1m", "lateness": "2s", "idle_timeout": "1h"},
        "sources": {"tail": {"type": "file", "path": str(src), "follow": True, "poll_interval": "20ms",
                             "batch_size": 100}},
        "stages": {
            "per_min": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()", "spent": "sum(amount)"}},
            "per_5min": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()", "spent": "sum(amount)"},
                         "window": {"size": "5m", "lateness": "2s", "idle_timeout": "1h"}},
        } if stages is None else stages,
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out")}},
        "state": {"checkpoint_interval": "600ms"},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms"},
    }
    if port is not None:
        doc["admin"] = {"listen": f"127.0.0.1:{port}"}
    return write_config(tmp_path / "shared.toml", doc)


def reference(events: list[dict]) -> dict:
    """(branch, window_start, window_end, user) -> (count, sum): what the sink holds once every window closed."""
    out: dict = defaultdict(lambda: [0, 0.0])
    for e in events:
        for branch, size in (("per_min", MIN), ("per_5min", 5 * MIN)):
            start = e["ts"] - e["ts"] % size
            cell = out[(branch, iso_utc(start), iso_utc(start + size), e["user_id"])]
            cell[0] += 1
            cell[1] += e["amount"]
    return {k: (v[0], v[1]) for k, v in out.items()}


def written(tmp_path: Path) -> dict:
    got: dict = {}
    for rows in window_files(tmp_path / "out").values():
        for r in rows:
            k = (r["branch"], r["window_start"], r["window_end"], r["user_id"])
            assert k not in got, f"{k} written twice into the sink"
            got[k] = (r["n"], r["spent"])
    return got


def same(got: dict, want: dict) -> None:
    assert set(got) == set(want), (sorted(set(want) - set(got))[:5], sorted(set(got) - set(want))[:5])
    for k, v in want.items():
        assert got[k][0] == v[0] and abs(got[k][1] - v[1]) < 1e-6, (k, got[k], v)


def closer() -> dict:
    return {"user_id": "closer", "ts": BASE_MS + 3_600_000, "amount": 0.0, "kind": "closer", "page": "/"}


def no_dead_letters(tmp_path: Path) -> None:
    dead = tmp_path / "dead.jsonl"
    assert not dead.exists() or not dead.read_text().strip(), dead.read_text()[:2000]


def test_two_branches_into_one_sink_match_the_reference(tmp_path, unused_tcp_port):
    events = make_events(N, span_s=600, seed=21)
    src = tmp_path / "in.jsonl"
    write_lines(src, [*events, closer()])
    want = reference(events)
    with Daemon(config(tmp_path, src, unused_tcp_port), tmp_path) as d:
        wait_until(lambda: len(written(tmp_path)) >= len(want), 60, what="every branch's windows")
        st = wait_until(lambda: status(unused_tcp_port), 10, what="the status")
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{unused_tcp_port}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    same(written(tmp_path), want)
    assert {k[0] for k in want} == {"per_min", "per_5min"}
    # the sink's rows are added up over the branches that wrote them (not the last branch's only)
    assert f'rtstream_rows_out_total{{sink="out"}} {float(len(want))}' in metrics, \
        [x for x in metrics.splitlines() if "rows_out" in x]
    assert st["flow"]["drawing"].startswith("graph      2 branches (1 sources, 2 stages, 1 sinks)")
    no_dead_letters(tmp_path)


@pytest.mark.parametrize("seed", range(LOOPS))
def test_sigkill_mid_stream_then_restart_gives_the_uninterrupted_output(tmp_path, seed):
    events = make_events(N, span_s=600, seed=100 + seed)
    want = reference(events)
    src = tmp_path / "in.jsonl"
    write_lines(src, events[:600])
    cfg = config(tmp_path, src)
    pos_file = tmp_path / "state" / "positions" / "tail.json"
    fed = threading.Event()

    def feed() -> None:  # records keep arriving while the daemon runs, so the kill lands mid-stream
        for i in range(600, 2200, 50):
            write_lines(src, events[i:i + 50], mode="ab")
            time.sleep(0.04)
        fed.set()

    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: written(tmp_path), 30, what="the first windows")
        feeder = threading.Thread(target=feed)
        feeder.start()
        # the first commit past 0 needs the first 5m window written (both branches hold the position)
        wait_until(lambda: pos_file.exists() and orjson.loads(pos_file.read_bytes())["position"] > 0, 30,
                   what="a commit")
        time.sleep(random.Random(seed).uniform(0, 0.4))  # a random point of the stream; not a wait for a condition
        d.kill()
        feeder.join(30)
    assert fed.is_set()
    committed = orjson.loads(pos_file.read_bytes())["position"]
    assert 0 < committed < src.stat().st_size
    write_lines(src, [*events[2200:], closer()], mode="ab")
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: len(written(tmp_path)) >= len(want), 60, what="every branch's windows")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    assert "from its checkpoint" in d.stderr, d.stderr[-3000:]
    same(written(tmp_path), want)
    no_dead_letters(tmp_path)


@pytest.mark.parametrize(("flow", "stages", "says"), [
    ("tail >> per_min >> out\ntail >> out", {},
     "pipeline.flow: sink 'out' is fed by several branches, and 'tail''s rows have no key (not an aggregate's)"),
    ("tail >> per_min >> out\ntail >> per_kind >> out",
     {"per_kind": {"type": "aggregate", "key": "kind", "aggregates": {"n": "count()"}}},
     "pipeline.flow: sink 'out' is fed by branches keyed apart ('per_min' by user_id, 'per_kind' by kind)"),
    ("tail >> per_min >> out\ntail >> total >> out",
     {"total": {"type": "aggregate", "aggregates": {"n": "count()"}}},
     "pipeline.flow: sink 'out' is fed by branches keyed apart ('per_min' by user_id, 'total' by nothing)"),
])
def test_a_shared_sink_it_cannot_tell_apart_is_refused_in_one_line(tmp_path, flow, stages, says):
    src = tmp_path / "in.jsonl"
    write_lines(src, make_events(5, span_s=10, seed=1))
    per_min = {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}}
    cfg = config(tmp_path, src, flow=flow, stages={"per_min": per_min, **stages})
    res = run_cli("validate", "-c", str(cfg))
    assert res.returncode == 2, res.stdout + res.stderr
    assert says in res.stdout + res.stderr, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
