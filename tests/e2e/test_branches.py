"""A flow of several branches through the real daemon: one followed file fans out to three branches,
each with its own window (tumbling 1m per user, hopping 2m every 1m per kind, count windows of 5
per user), each checked against an independent reference; then a SIGKILL mid-stream and a restart
give the same output as an uninterrupted run would (nothing lost, nothing written twice different,
nothing dead-lettered)."""

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
from tests.support import LOOPS, Daemon, status, wait_until, window_files, write_config

MIN = 60_000
N = 3000
COUNT = 5


def config(tmp_path: Path, src: Path, port: int | None = None) -> Path:
    doc = {
        "pipeline": {"name": "branches", "flow": "tail >> per_user >> users\n"
                                                  "tail >> per_kind >> kinds  # a hopping window of its own\n"
                                                  "tail >> every5 >> fives"},
        "window": {"size": "1m", "lateness": "2s", "idle_timeout": "1h"},
        "sources": {"tail": {"type": "file", "path": str(src), "follow": True, "poll_interval": "20ms",
                             "batch_size": 100}},
        "stages": {
            "per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()", "spent": "sum(amount)"}},
            "per_kind": {"type": "aggregate", "key": "kind", "aggregates": {"n": "count()"},
                         "window": {"type": "hopping", "size": "2m", "hop": "1m", "lateness": "2s",
                                    "idle_timeout": "1h"}},
            "every5": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()", "spent": "sum(amount)"},
                       "window": {"type": "count", "size": COUNT}},
        },
        "sinks": {name: {"type": "file", "path": str(tmp_path / name)} for name in ("users", "kinds", "fives")},
        "state": {"checkpoint_interval": "600ms"},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms"},
    }
    if port is not None:
        doc["admin"] = {"listen": f"127.0.0.1:{port}"}
    return write_config(tmp_path / "branches.toml", doc)


def reference(events: list[dict]) -> dict[str, dict]:
    """What each branch's sink holds once every time window of the data has closed."""
    users: dict = defaultdict(lambda: [0, 0.0])
    kinds: dict = defaultdict(int)
    for e in events:
        start = e["ts"] - e["ts"] % MIN
        users[(iso_utc(start), e["user_id"])][0] += 1
        users[(iso_utc(start), e["user_id"])][1] += e["amount"]
        for s in (start, start - MIN):  # the two 2m windows, one every 1m, holding the record
            kinds[(iso_utc(s), e["kind"])] += 1
    by_user: dict = defaultdict(list)
    for e in events:
        by_user[e["user_id"]].append(e)
    fives = {}
    for user, items in by_user.items():
        for i in range(0, len(items) - len(items) % COUNT, COUNT):
            win = items[i:i + COUNT]
            fives[(iso_utc(min(x["ts"] for x in win)), user)] = (COUNT, sum(x["amount"] for x in win))
    return {"users": {k: (v[0], v[1]) for k, v in users.items()}, "kinds": dict(kinds), "fives": fives}


def written(tmp_path: Path) -> dict[str, dict]:
    out: dict[str, dict] = {"users": {}, "kinds": {}, "fives": {}}
    for name, key in (("users", "user_id"), ("kinds", "kind"), ("fives", "user_id")):
        for rows in window_files(tmp_path / name).values():
            for r in rows:
                out[name][(r["window_start"], r[key])] = (r["n"], r["spent"]) if "spent" in r else r["n"]
    return out


def same(got: dict[str, dict], want: dict[str, dict]) -> None:
    for name in want:
        assert set(got[name]) == set(want[name]), name
        for k, v in want[name].items():
            g = got[name][k]
            if isinstance(v, tuple):
                assert g[0] == v[0] and abs(g[1] - v[1]) < 1e-6, (name, k, g, v)
            else:
                assert g == v, (name, k, g, v)


def closer() -> dict:
    # far ahead: closes every time window of the data (its own stay open; its count window has 1 record)
    return {"user_id": "closer", "ts": BASE_MS + 3_600_000, "amount": 0.0, "kind": "closer", "page": "/"}


def test_three_branches_with_their_own_windows_match_the_reference(tmp_path, unused_tcp_port):
    events = make_events(N, span_s=600, seed=5)
    src = tmp_path / "in.jsonl"
    write_lines(src, [*events, closer()])
    want = reference(events)
    with Daemon(config(tmp_path, src, unused_tcp_port), tmp_path) as d:
        wait_until(lambda: all(len(written(tmp_path)[k]) >= len(v) for k, v in want.items()), 60,
                   what="every branch's windows")
        st = wait_until(lambda: status(unused_tcp_port), 10, what="the status")
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{unused_tcp_port}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{unused_tcp_port}/", timeout=5) as resp:
            page = resp.read().decode()
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    same(written(tmp_path), want)
    assert st["flow"]["edges"] == [["tail", "per_user"], ["per_user", "users"], ["tail", "per_kind"],
                                   ["per_kind", "kinds"], ["tail", "every5"], ["every5", "fives"]]
    assert st["flow"]["drawing"].startswith("graph      3 branches (1 sources, 3 stages, 3 sinks)")
    assert st["records_in"] == N + 1  # each record read once, whatever the branches
    assert "rtstream_records_in_total" in metrics and 'data-graph' in page
    dead = tmp_path / "dead.jsonl"
    assert not dead.exists() or not dead.read_text().strip()


def test_a_bad_record_is_dead_lettered_once_not_once_per_branch(tmp_path):
    src = tmp_path / "in.jsonl"
    good = make_events(20, span_s=60, seed=3)
    src.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in good[:10]) + b"{not json\n[1, 2]\n"
                    + orjson.dumps({"user_id": "u1", "amount": 1.0, "kind": "view"}) + b"\n"  # no ts
                    + b"".join(orjson.dumps(e) + b"\n" for e in good[10:]) + orjson.dumps(closer()) + b"\n")
    with Daemon(config(tmp_path, src), tmp_path) as d:
        wait_until(lambda: (tmp_path / "dead.jsonl").exists() and len((tmp_path / "dead.jsonl").read_text()
                                                                        .splitlines()) >= 3, 30, what="dead letters")
        wait_until(lambda: written(tmp_path)["users"], 30, what="a window")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    letters = [orjson.loads(x) for x in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert sorted(x["reason"] for x in letters) == ["decode", "decode", "no_time"], letters


@pytest.mark.parametrize("seed", range(LOOPS))
def test_sigkill_mid_stream_then_restart_gives_the_uninterrupted_output(tmp_path, seed):
    events = make_events(N, span_s=600, seed=seed)
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
        wait_until(lambda: written(tmp_path)["fives"], 30, what="the first windows")
        feeder = threading.Thread(target=feed)
        feeder.start()
        # the first commit past 0 needs the first 2m hopping window written: about 1000 records in
        wait_until(lambda: pos_file.exists() and orjson.loads(pos_file.read_bytes())["position"] > 0, 30,
                   what="a commit")
        time.sleep(random.Random(seed).uniform(0, 0.4))  # a random point of the stream; not a wait for a condition
        d.kill()
        feeder.join(30)
    assert fed.is_set()
    assert 0 < orjson.loads(pos_file.read_bytes())["position"] < src.stat().st_size
    write_lines(src, [*events[2200:], closer()], mode="ab")
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: all(len(written(tmp_path)[k]) >= len(v) for k, v in want.items()), 60,
                   what="every branch's windows")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    assert "from its checkpoint" in d.stderr, d.stderr[-3000:]
    same(written(tmp_path), want)
    dead = tmp_path / "dead.jsonl"
    assert not dead.exists() or not dead.read_text().strip()


def test_the_python_api_runs_several_chains_to_the_end(tmp_path):
    from rtstream import Pipeline, SinkNode, SourceNode, StageNode

    events = make_events(1500, span_s=300, seed=9)
    src = tmp_path / "in.jsonl"
    write_lines(src, events)
    tail = SourceNode("tail", "file", path=str(src))
    per_user = StageNode("per_user", "aggregate", key="user_id", aggregates={"n": "count()", "spent": "sum(amount)"})
    per_kind = StageNode("per_kind", "aggregate", key="kind", aggregates={"n": "count()"},
                         window={"type": "hopping", "size": "2m", "hop": "1m"})
    every5 = StageNode("every5", "aggregate", key="user_id", aggregates={"n": "count()", "spent": "sum(amount)"},
                       window={"type": "count", "size": COUNT})
    sinks = {name: SinkNode(name, "file", path=str(tmp_path / name)) for name in ("users", "kinds", "fives")}
    pipeline = Pipeline([tail >> per_user >> sinks["users"], tail >> per_kind >> sinks["kinds"],
                         tail >> every5 >> sinks["fives"]], name="api", window={"size": "1m"},
                        state={"checkpoint_interval": "1s"}, daemon={"state_dir": str(tmp_path / "state"),
                                                                     "log_level": "warning"},
                        dead_letter={"path": str(tmp_path / "dead.jsonl")})
    assert pipeline.run() == 0
    want = reference(events)
    by_user: dict = defaultdict(list)
    for e in events:
        by_user[e["user_id"]].append(e)
    for user, items in by_user.items():  # the end of a finite run: the unfinished count windows go out too
        tail_items = items[len(items) - len(items) % COUNT:]
        if tail_items:
            want["fives"][(iso_utc(min(x["ts"] for x in tail_items)), user)] = (
                len(tail_items), sum(x["amount"] for x in tail_items))
    got = written(tmp_path)
    same(got, want)


def test_a_source_straight_into_a_sink_beside_an_aggregating_branch(tmp_path):
    from rtstream import Pipeline, SinkNode, SourceNode, StageNode

    events = make_events(300, span_s=180, seed=4)
    src = tmp_path / "in.jsonl"
    write_lines(src, events)
    tail = SourceNode("tail", "file", path=str(src))
    per_user = StageNode("per_user", "aggregate", key="user_id", aggregates={"n": "count()", "spent": "sum(amount)"})
    raw, users = SinkNode("raw", "file", path=str(tmp_path / "raw")), SinkNode("users", "file", path=str(tmp_path / "users"))
    p = Pipeline([tail >> raw, tail >> per_user >> users], window={"size": "1m"}, state={"checkpoint_interval": "1s"},
                 daemon={"state_dir": str(tmp_path / "state"), "log_level": "warning"})
    assert p.run() == 0
    rows = [r for rs in window_files(tmp_path / "raw").values() for r in rs]
    assert sorted(orjson.dumps({k: v for k, v in r.items() if k not in ("window_start", "window_end")},
                               option=orjson.OPT_SORT_KEYS) for r in rows) == \
        sorted(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in events)  # every record, once, as it came
    assert {(r["window_start"], r["user_id"]): r["n"] for rs in window_files(tmp_path / "users").values()
            for r in rs} == {k: v[0] for k, v in reference(events)["users"].items()}


def test_a_sources_own_map_before_the_sources_meet(tmp_path):
    from rtstream import Pipeline, SinkNode, SourceNode, StageNode

    orders, clicks = make_events(800, span_s=300, seed=12), make_events(700, span_s=300, seed=13)
    write_lines(tmp_path / "orders.jsonl", orders)
    write_lines(tmp_path / "clicks.jsonl", clicks)
    o = SourceNode("orders", "file", path=str(tmp_path / "orders.jsonl"))
    c = SourceNode("clicks", "file", path=str(tmp_path / "clicks.jsonl"))
    purchases = StageNode("purchases", "map", call="tests.e2e.userfns:only_purchases")  # orders only
    per_user = StageNode("per_user", "aggregate", key="user_id", aggregates={"n": "count()", "spent": "sum(amount)"})
    out = SinkNode("users", "file", path=str(tmp_path / "users"))
    p = Pipeline([o >> purchases >> per_user >> out, c >> per_user], window={"size": "1m"},
                 daemon={"state_dir": str(tmp_path / "state"), "log_level": "warning"})
    assert p.run() == 0
    kept = [e for e in orders if e["kind"] == "purchase"] + clicks  # the map ran on the orders alone
    assert len(kept) < len(orders) + len(clicks)
    got = {(r["window_start"], r["user_id"]): (r["n"], r["spent"])
           for rs in window_files(tmp_path / "users").values() for r in rs}
    same({"users": got}, {"users": reference(kept)["users"]})
