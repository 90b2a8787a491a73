"""`python -m bench.join_memory`: issue #27's join memory goal, a window join of two inputs of
1,000,000 records each over 100,000 keys: peak RSS (goal under 500 MB) and the join's state back to
its floor once the watermark passes each window.

    python -m bench.join_memory [--records N] [--keys K] [--no-record] [--tracemalloc]

The two inputs are `generator` sources (seeds 1 and 2, `user_id` over K keys, 10,000 records/s of
event time, so a 10 s window holds 100,000 rows a side), joined on `user_id` (inner) in 10 s
tumbling windows, into a python sink that counts each window's rows. The daemon is a fresh child
process: its peak RSS is the kernel's (ru_maxrss of the waited-for child, VmHWM), sampled beside
/metrics' `rtstream_state_rows` of the join every 100 ms. The output is verified: each window's
pair count equals an independent count (sum over keys of left rows x right rows) over the same
inputs, regenerated here. Never run by the tests (it is `make bench`'s).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rtstream.sources.generator import make_record
from rtstream.windows.clock import epoch_ms
from tests.support import write_config

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
RATE = 10_000.0  # records per second of event time, each side
SIZE_MS = 10_000
START = "2026-01-01T00:00:00Z"
CHUNK = 1024  # the generator's seeding chunk (rtstream.sources.generator)
TOKEN = "join-memory-bench"


async def count_window(window: Any) -> None:
    """The bench's sink: one line per window, `start_ms rows` (the rows themselves are dropped)."""
    with open(os.environ["JOIN_MEMORY_COUNTS"], "a") as fh:
        fh.write(f"{window.start_ms} {len(window.records)}\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(n: int, keys: int, workdir: Path, port: int) -> dict[str, Any]:
    def side(seed: int) -> dict[str, Any]:
        return {"type": "generator", "count": n, "users": keys, "seed": seed, "rate": RATE, "realtime": False,
                "start": START, "batch_size": 5000}
    return {
        "pipeline": {"name": "join-memory", "flow": "[left, right] >> match >> out", "python_path": [str(ROOT)]},
        "window": {"size": "10s", "time_field": "ts", "lateness": "0s"},
        "sources": {"left": side(1), "right": side(2)},
        "stages": {"match": {"type": "join", "left": "left", "right": "right", "on": "user_id", "how": "inner",
                             "max_rows": 200_000}},
        "sinks": {"out": {"type": "python", "call": "bench.join_memory:count_window"}},
        "daemon": {"state_dir": str(workdir / "state"), "log_format": "json"},
        "dead_letter": {"path": str(workdir / "dead.jsonl")},
        "admin": {"listen": f"127.0.0.1:{port}", "token": TOKEN},
    }


def reference(n: int, keys: int) -> dict[int, int]:
    """Pairs per window start: for each key, left rows x right rows in the window."""
    start = epoch_ms(START)
    per: dict[int, list[Counter[str]]] = defaultdict(lambda: [Counter(), Counter()])
    for s, seed in enumerate((1, 2)):
        rng = random.Random()
        for i in range(n):
            if i % CHUNK == 0:
                rng = random.Random(f"{seed}:{i // CHUNK}")
            ts = start + int(i * 1000 / RATE)
            per[ts - ts % SIZE_MS][s][make_record(keys, ts, rng)["user_id"]] += 1
    return {w: sum(c * right[k] for k, c in left.items()) for w, (left, right) in per.items()}


class Sampler(threading.Thread):
    """RSS (VmRSS, VmHWM) and the join's state rows, every 100 ms while the daemon runs."""

    def __init__(self, pid: int, port: int):
        super().__init__(daemon=True)
        self.pid, self.port = pid, port
        self.samples: list[tuple[float, float, float, float | None]] = []  # (s, rss MB, hwm MB, state rows)
        self.stop = threading.Event()

    def _status(self) -> tuple[float, float]:
        text = Path(f"/proc/{self.pid}/status").read_text()
        kb = {k: int(v.split()[0]) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(.*)$", text, re.M)}
        return kb["VmRSS"] / 1024, kb["VmHWM"] / 1024

    def _state_rows(self) -> float | None:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/metrics",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
        try:
            with urllib.request.urlopen(req, timeout=1) as r:
                body = r.read().decode()
        except OSError:
            return None
        m = re.search(r'^rtstream_state_rows\{[^}]*stage="match"[^}]*\}\s+(\S+)', body, re.M)
        return float(m.group(1)) if m else None

    def run(self) -> None:
        t0 = time.monotonic()
        while not self.stop.is_set():
            try:
                rss, hwm = self._status()
            except (OSError, KeyError):
                return
            self.samples.append((time.monotonic() - t0, rss, hwm, self._state_rows()))
            self.stop.wait(0.1)


def measure(n: int, keys: int, workdir: Path, trace: bool) -> dict[str, Any]:
    port = free_port()
    cfg = write_config(workdir / "join.toml", config(n, keys, workdir, port))
    counts = workdir / "counts"
    env = {**os.environ, "JOIN_MEMORY_COUNTS": str(counts)}
    if trace:
        env["PYTHONTRACEMALLOC"] = "1"
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "rtstream", "run", "-c", str(cfg)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(workdir / "stderr", "w"))
    sampler = Sampler(proc.pid, port)
    sampler.start()
    code = proc.wait(timeout=1800)
    wall = time.monotonic() - t0
    sampler.stop.set()
    sampler.join()
    if code != 0:
        raise SystemExit(f"rtstream exited {code}:\n{(workdir / 'stderr').read_text()[-3000:]}")
    dead = workdir / "dead.jsonl"
    if dead.exists() and dead.read_text():
        raise SystemExit(f"dead letters:\n{dead.read_text()[:2000]}")
    got: dict[int, int] = defaultdict(int)
    for line in counts.read_text().split("\n"):
        if line:
            w, c = line.split()
            got[int(w)] += int(c)
    return {"wall_s": wall, "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "got": dict(got), "samples": sampler.samples}


def report(n: int, keys: int, res: dict[str, Any], want: dict[int, int]) -> str:
    samples = res["samples"]
    rows = [s[3] for s in samples if s[3] is not None]
    peak_state = max(rows) if rows else float("nan")
    closes = [(a[3], b[3], b[1]) for a, b in zip(samples, samples[1:], strict=False)  # right after a close
              if a[3] is not None and b[3] is not None and b[3] < a[3]]
    drops = [c[1] for c in closes]
    rss = [s[1] for s in samples]
    quarter = len(rss) // 4 or 1
    window_rows = 2 * int(RATE * SIZE_MS / 1000)
    lines = [
        f"| inputs | {n:,} records a side, {keys:,} keys, 10 s tumbling windows ({int(RATE * SIZE_MS / 1000):,} "
        f"rows a side a window), inner join on the key |",
        "|---|---|",
        f"| output | {sum(res['got'].values()):,} pairs in {len(res['got'])} windows, each window's count equal "
        "to the independent count |",
        f"| peak RSS (ru_maxrss) | **{res['peak_mb']:.0f} MB** (goal < 500 MB) |",
        f"| RSS, first / last quarter of the run, median of samples | {sorted(rss[:quarter])[quarter // 2]:.0f} MB / "
        f"{sorted(rss[-quarter:])[len(rss[-quarter:]) // 2]:.0f} MB |",
        f"| join state (`rtstream_state_rows`), peak | {peak_state:,.0f} rows |",
        f"| join state right after a window closes (min / max over {len(drops)} closes) | "
        f"{min(drops, default=float('nan')):,.0f} / {max(drops, default=float('nan')):,.0f} rows |",
        f"| join state at the last sample | {rows[-1] if rows else float('nan'):,.0f} rows |",
        f"| peak state over one window's rows ({window_rows:,}, both sides) | {peak_state / window_rows:.2f} x: a closed "
        "window's rows are gone before the next window fills |",
        "| RSS right after each close, MB | " + ", ".join(f"{c[2]:.0f}" for c in closes) + " |",
        f"| wall | {res['wall_s']:.1f} s ({len(samples)} samples every 100 ms) |",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.join_memory")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    ap.add_argument("--tracemalloc", action="store_true", help="run the daemon under tracemalloc (slower)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="join-memory-") as tmp:
        res = measure(args.records, args.keys, Path(tmp), args.tracemalloc)
    want = reference(args.records, args.keys)
    if res["got"] != want:
        bad = sorted(w for w in set(want) | set(res["got"]) if want.get(w) != res["got"].get(w))
        raise SystemExit(f"output differs from the reference in {len(bad)} windows, e.g. {bad[:3]}: "
                         f"got {[res['got'].get(w) for w in bad[:3]]}, want {[want.get(w) for w in bad[:3]]}")
    text = report(args.records, args.keys, res, want)
    print(text)
    if not args.no_record:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        with open(RESULTS, "a") as fh:
            fh.write(f"\n### Join memory, {stamp} (`python -m bench.join_memory`)\n\n{text}\n")


if __name__ == "__main__":
    main()
