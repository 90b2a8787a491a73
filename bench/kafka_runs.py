"""W1 through Kafka: loading the topic, running the raw loop and rtstream, verifying their output.

Every run is a fresh child process (the raw loop too, so neither pays for this process's heap),
timed from start to exit and charged its CPU seconds, user + system, its own children included;
the broker's are not.
"""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from rtstream.testing.peers.tansu import create_topic

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class KafkaRun:
    what: str
    records: int
    wall_s: float
    cpu_s: float
    rss_mb: float = 0.0
    log: str = ""

    @property
    def rate(self) -> float:
        return self.records / self.wall_s

    @property
    def cpu_us_per_record(self) -> float:
        return self.cpu_s / self.records * 1e6


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def raw_run(bootstrap: str, topic: str, n: int) -> KafkaRun:
    c0 = _cpu(resource.RUSAGE_CHILDREN)
    took, rss_mb, _ = measured([sys.executable, "-m", "bench.ceilings", bootstrap, topic, str(n)])
    return KafkaRun("raw aiokafka loop (no group; getmany + orjson + dict + produce)", n, took,
                    _cpu(resource.RUSAGE_CHILDREN) - c0, rss_mb)


def rtstream_run(bootstrap: str, topic: str, partitions: int, truth: dict, workdir: Path, workers: int = 1,
                 assignment: str = "group") -> KafkaRun:
    """rtstream on W1 from process start to exit, its output verified against `truth`."""
    out_topic = f"results-{uuid.uuid4().hex[:6]}"
    asyncio.run(create_topic(bootstrap, out_topic, partitions))
    c0 = _cpu(resource.RUSAGE_CHILDREN)
    took, rss_mb, err = run_rtstream(bootstrap, topic, out_topic, workdir, workers, assignment)
    cpu = _cpu(resource.RUSAGE_CHILDREN) - c0
    what = "rtstream W1" + (f", workers = {workers}" if workers > 1 else ", one process") + (
        f", assignment = {assignment}" if assignment != "group" else "")
    verify(asyncio.run(read_results(bootstrap, out_topic, len(truth))), truth, what)
    return KafkaRun(what, sum(n for n, _ in truth.values()), took, cpu, rss_mb, err)


async def load_topic(bootstrap: str, topic: str, values: list[tuple[bytes, bytes]], partitions: int) -> float:
    from aiokafka import AIOKafkaProducer

    await create_topic(bootstrap, topic, partitions)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    t0 = time.perf_counter()
    try:
        futs = [await producer.send(topic, v, key=k) for k, v in values]
        await asyncio.gather(*futs)
    finally:
        await producer.stop()
    return time.perf_counter() - t0


async def read_results(bootstrap: str, topic: str, expect: int) -> dict[tuple[int, str], tuple[int, float]]:
    from aiokafka import AIOKafkaConsumer

    c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"check-{uuid.uuid4().hex}",
                         auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=10)
    await c.start()
    out: dict[tuple[int, str], tuple[int, float]] = {}
    idle = 0
    try:
        while len(out) < expect and idle < 20:
            data = await c.getmany(timeout_ms=250, max_records=10000)
            idle = 0 if data else idle + 1
            for msgs in data.values():
                for m in msgs:
                    d = orjson.loads(m.value)
                    start = int(datetime.fromisoformat(d["window_start"]).timestamp() * 1000)
                    out[(start, d["user_id"])] = (d["events"], d["spent"])
    finally:
        await c.stop()
    return out


def run_rtstream(bootstrap: str, topic: str, out_topic: str, workdir: Path, workers: int = 1,
                 assignment: str = "group") -> tuple[float, float, str]:
    """Wall seconds from process start to exit, peak RSS in MB (the largest process), and stderr."""
    run_id = uuid.uuid4().hex[:8]
    cfg = workdir / f"w1-{run_id}.toml"
    assign_line = f'\nassignment = "{assignment}"' if assignment != "group" else ""
    cfg.write_text(f"""
[pipeline]
name = "w1"
flow = "events >> per_user >> results"
[window]
size = "5m"
time = "event"
lateness = "10s"
[sources.events]
type = "kafka"
bootstrap_servers = "{bootstrap}"
topics = ["{topic}"]
group_id = "w1-{uuid.uuid4().hex}"
stop_at_end = true{assign_line}
consumer = {{ fetch_max_wait_ms = 10 }}
[stages.per_user]
type = "aggregate"
key = "user_id"
aggregates = {{ events = "count()", spent = "sum(amount)" }}
[sinks.results]
type = "kafka"
bootstrap_servers = "{bootstrap}"
topic = "{out_topic}"
[daemon]
state_dir = "{workdir / f'state-{run_id}'}"
log_level = "info"
workers = {workers}
""")
    return measured([sys.executable, "-m", "rtstream", "run", "-c", str(cfg)])


def measured(cmd: list[str]) -> tuple[float, float, str]:
    """Run `cmd` from the repository root: wall seconds to exit, the peak RSS in MB of its largest
    process, and its stderr (kept in a file: a full pipe would stall it)."""
    with tempfile.TemporaryFile("w+") as err_file:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stderr=err_file, text=True)
        # ru_maxrss of a child counts the parent's memory at fork; VmHWM is the child's own peak
        peak_kb = 0
        while proc.poll() is None:
            peak_kb = max([peak_kb, _vm_hwm_kb(proc.pid), *(_vm_hwm_kb(c) for c in _children(proc.pid))])
            time.sleep(0.02)
        took = time.perf_counter() - t0
        err_file.seek(0)
        err = err_file.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[1:4])} exited {proc.returncode}:\n{err[-5000:]}")
    return took, peak_kb / 1024, err


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(c) for c in fh.read().split()]
    except OSError:
        return []


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def verify(got: dict, want: dict, what: str) -> None:
    if set(got) != set(want):
        raise SystemExit(f"{what}: {len(got)} results, expected {len(want)}; not reporting a figure")
    bad = [k for k, (n, s) in want.items() if got[k][0] != n or abs(got[k][1] - s) > 1e-6 * max(1.0, abs(s))]
    if bad:
        raise SystemExit(f"{what}: {len(bad)} results differ from the reference, e.g. {bad[0]}")


def side_by_side(bootstrap: str, topic: str, partitions: int, truth: dict, workdir: Path, workers: int,
                 rounds: int, assignments: tuple[str, ...] = ("group",)) -> list[str]:
    """The raw loop, rtstream in one process and with workers, interleaved for `rounds` rounds;
    a table of each one's best round (by wall time), every rtstream output verified."""
    n = sum(c for c, _ in truth.values())
    kinds = [(1, a) for a in assignments] + ([(workers, a) for a in assignments] if workers > 1 else [])
    best: dict[tuple[int, str], KafkaRun] = {}
    for r in range(rounds):
        runs = {(0, "raw"): raw_run(bootstrap, topic, n)}
        for w, a in kinds:
            runs[(w, a)] = rtstream_run(bootstrap, topic, partitions, truth, workdir, w, a)
        for kind, run in runs.items():
            print(f"round {r + 1}: {run.what}: {run.wall_s:.1f}s, CPU {run.cpu_s:.1f}s", flush=True)
            if kind not in best or run.wall_s < best[kind].wall_s:
                best[kind] = run
    raw = best[(0, "raw")]
    lines = ["| what | wall s | records/s | vs raw loop | CPU s | CPU us/record | peak RSS MB |",
             "|---|---:|---:|---|---:|---:|---:|"]
    for (w, a), run in best.items():
        vs = "" if run is raw else f"{run.rate / raw.rate:.2f} x"
        if w > 1:
            vs += f"; {run.rate / best[(1, a)].rate:.2f} x one process"
        lines.append(f"| {run.what} | {run.wall_s:.1f} | {run.rate:,.0f} | {vs} | {run.cpu_s:.1f} | "
                     f"{run.cpu_us_per_record:.2f} | {run.rss_mb:.0f} |")
    return lines
