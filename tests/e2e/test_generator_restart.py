"""The generator source killed after a commit and restarted: hopping windows written before the kill
stay exact (the commit's mark is kept with the position), and none is missing."""

from __future__ import annotations

import random
import signal
from collections import Counter
from pathlib import Path

import orjson

from rtstream.sources.clocked import FIXED_START
from rtstream.sources.generator import make_record
from rtstream.windows.clock import epoch_ms
from tests.support import Daemon, wait_until, write_config

RATE = 200.0
_CHUNK = 1024


def _records(n: int) -> list[dict]:
    """The generator's records 0..n-1, made here from its rule: record i from the seed's chunk."""
    start = epoch_ms(FIXED_START)
    out = []
    for i in range(n):
        if i % _CHUNK == 0:
            rng = random.Random(f"42:{i // _CHUNK}")
        out.append(make_record(100, start + int(i * 1000 / RATE), rng))
    return out


def test_a_generator_killed_after_a_commit_rebuilds_the_same_hopping_windows(tmp_path: Path) -> None:
    doc = {
        "pipeline": {"name": "gen", "flow": "clicks >> per_page >> files"},
        "window": {"type": "hopping", "size": "10s", "hop": "2s", "lateness": "0s"},
        "sources": {"clicks": {"type": "generator", "rate": RATE, "realtime": False}},
        "stages": {"per_page": {"type": "aggregate", "key": "page", "aggregates": {"n": "count()"}}},
        "sinks": {"files": {"type": "file", "path": str(tmp_path / "out"), "fsync": False}},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms"},
    }
    cfg = write_config(tmp_path / "gen.toml", doc)
    pos_file = tmp_path / "state" / "positions" / "clicks.json"

    def position() -> int:
        return int(orjson.loads(pos_file.read_bytes())["position"]) if pos_file.exists() else 0

    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: position() > 10_000, 60, what="a commit past 10,000 records")
        d.kill()
    committed = position()
    out = tmp_path / "out"
    before = len(list(out.glob("*.jsonl")))
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: len(list(out.glob("*.jsonl"))) >= before + 100, 60, what="a hundred more windows")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    assert position() > committed
    got = {(r["window_start"], r["page"]): r["n"] for f in out.glob("*.jsonl")
           for r in (orjson.loads(line) for line in f.read_bytes().splitlines())}
    starts = sorted({epoch_ms(s) for s, _ in got})
    last_end = starts[-1] + 10_000
    base = epoch_ms(FIXED_START)
    want: Counter = Counter()
    for rec in _records(int((last_end - base) * RATE / 1000) + 1):
        last = rec["ts"] // 2000 * 2000
        for start in range(last - 8000, last + 2000, 2000):
            if start <= starts[-1]:
                want[(start, rec["page"])] += 1
    assert {(epoch_ms(s), p): n for (s, p), n in got.items()} == dict(want)
    assert starts == list(range(starts[0], starts[-1] + 2000, 2000))
