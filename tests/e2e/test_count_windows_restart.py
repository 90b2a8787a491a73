"""Count windows through the real daemon: a SIGKILL at a random point of a followed file, then a
restart, writes exactly the windows an uninterrupted run writes (an independent reference: per key,
in file order, every 7 records), none twice different, none lost, nothing dead-lettered. The kill
lands while records are still arriving, so windows are open (and some closed after the last
checkpoint) when it does."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import defaultdict

import orjson
import pytest

from rtstream.model.window import iso_utc as iso  # formatting only: the windows are computed here
from tests.data import BASE_MS, write_lines
from tests.support import LOOPS, Daemon, kill_mid_feed, wait_until, window_files, write_config

SIZE = 7
N = 2400


def events(seed: int) -> list[dict]:
    rnd = random.Random(seed)
    stamps = list(range(N))
    rnd.shuffle(stamps)  # out of order by up to the whole span; unique, so each window's start is too
    return [{"user_id": f"u{rnd.randint(1, 15)}", "ts": BASE_MS + 250 * s, "amount": rnd.randint(-50, 50)}
            for s in stamps]


def reference(evs: list[dict]) -> dict[tuple[str, str], tuple[int, int]]:
    """(user, window_start) -> (count, sum): per user, in file order, each run of SIZE records."""
    by_user: dict[str, list[dict]] = defaultdict(list)
    for e in evs:
        by_user[e["user_id"]].append(e)
    out = {}
    for user, items in by_user.items():
        for i in range(0, len(items) - len(items) % SIZE, SIZE):
            win = items[i:i + SIZE]
            out[(user, iso(min(e["ts"] for e in win)).replace(":", "-"))] = (SIZE, sum(e["amount"] for e in win))
    return out


def config(tmp_path, src):
    doc = {
        "pipeline": {"name": "counts", "flow": "tail >> per_user >> files"},
        "window": {"type": "count", "size": SIZE},
        "sources": {"tail": {"type": "file", "path": str(src), "follow": True, "poll_interval": "20ms",
                             "batch_size": 50}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id",
                                "aggregates": {"n": "count()", "spent": "sum(amount)"}}},
        "sinks": {"files": {"type": "file", "path": str(tmp_path / "out")}},
        "state": {"checkpoint_interval": "600ms"},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms"},
    }
    return write_config(tmp_path / "counts.toml", doc)


def got_rows(tmp_path) -> dict[tuple[str, str], tuple[int, int]]:
    out = {}
    for rows in window_files(tmp_path / "out").values():
        for r in rows:
            out[(r["user_id"], r["window_start"].replace(":", "-"))] = (r["n"], r["spent"])
    return out


@pytest.mark.parametrize("seed", range(LOOPS))
def test_sigkill_mid_stream_then_restart_writes_what_an_uninterrupted_run_does(tmp_path, seed):
    evs = events(seed)
    want = reference(evs)
    src = tmp_path / "in.jsonl"
    write_lines(src, evs[:400])
    cfg = config(tmp_path, src)
    pos_file = tmp_path / "state" / "positions" / "tail.json"
    fed = threading.Event()

    def feed() -> None:  # records keep arriving while the daemon runs, so the kill lands mid-stream
        for i in range(400, 1600, 40):
            write_lines(src, evs[i:i + 40], mode="ab")
            time.sleep(0.01)
        fed.set()

    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: len(window_files(tmp_path / "out")) >= 3, 30, what="first count windows")
        kill_mid_feed(d, feed, pos_file, random.Random(seed).uniform(0, 0.3))
    assert fed.is_set()
    committed = orjson.loads(pos_file.read_bytes())["position"]
    assert 0 < committed < src.stat().st_size  # open count windows held the commit back
    write_lines(src, evs[1600:], mode="ab")
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: len(got_rows(tmp_path)) >= len(want), 60, what="every count window of the data")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    assert "restored" in d.stderr and "from its checkpoint" in d.stderr, d.stderr[-3000:]
    assert got_rows(tmp_path) == want
    dead = tmp_path / "dead.jsonl"
    assert not dead.exists() or not dead.read_text().strip()


def test_a_finite_run_writes_the_unfinished_windows_too(tmp_path):
    from tests.support import run_cli

    evs = events(42)[:500]
    src = tmp_path / "in.jsonl"
    write_lines(src, evs)
    cfg = config(tmp_path, src)
    text = cfg.read_text().replace("follow = true", "follow = false")
    cfg.write_text(text)
    res = run_cli("run", "-c", str(cfg), timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    got = got_rows(tmp_path)
    want = reference(evs)
    assert {k: v for k, v in got.items() if v[0] == SIZE} == want
    by_user: dict[str, list] = defaultdict(list)
    for e in evs:
        by_user[e["user_id"]].append(e)
    tails = {u: items[len(items) - len(items) % SIZE:] for u, items in by_user.items() if len(items) % SIZE}
    assert {k: v for k, v in got.items() if v[0] != SIZE} == {
        (u, iso(min(e["ts"] for e in t)).replace(":", "-")): (len(t), sum(e["amount"] for e in t))
        for u, t in tails.items()}
    assert "all sources finished: 500 records read" in res.stderr
