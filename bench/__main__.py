"""`make bench`: the ceilings and rtstream side by side on workload W1, in one run.

    python -m bench [--records N] [--partitions 4] [--skip-kafka]

Starts its own Tansu broker on loopback, loads W1, measures, verifies rtstream's results against an
independent computation before reporting a figure, prints a table and appends it to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bench.ceilings import cpu_ceiling, raw_ceiling
from bench.engine_only import engine_throughput
from bench.state import checkpoint_cost, session_throughput
from bench.workload import reference, w1_values
from rtstream.testing.tansu import TansuBroker, create_topic

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"


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


def run_rtstream(bootstrap: str, topic: str, out_topic: str, workdir: Path, workers: int = 1) -> tuple[float, float, str]:
    """Wall seconds from process start to exit, peak RSS in MB (the largest process), and stderr."""
    cfg = workdir / f"w1-{workers}.toml"
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
stop_at_end = true
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
state_dir = "{workdir / f'state-{workers}'}"
log_level = "info"
workers = {workers}
""")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "rtstream", "run", "-c", str(cfg)], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    # ru_maxrss of a child counts the parent's memory at fork; VmHWM is the child's own peak
    peak_kb = 0
    while proc.poll() is None:
        peak_kb = max([peak_kb, _vm_hwm_kb(proc.pid), *(_vm_hwm_kb(c) for c in _children(proc.pid))])
        time.sleep(0.02)
    took = time.perf_counter() - t0
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"rtstream exited {proc.returncode}:\n{err}")
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


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--skip-kafka", action="store_true", help="only the in-memory engine and CPU ceiling")
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    ap.add_argument("--no-rss", action="store_true", help="skip the 1M -> 10M records RSS run (about a minute)")
    ap.add_argument("--workers", type=int, default=2, help="also run W1 with [daemon] workers = N (0: skip)")
    args = ap.parse_args()
    n = args.records
    print(f"W1: {n:,} records, {args.partitions} partitions", flush=True)
    values = w1_values(n)
    truth = reference(values)
    rows: list[tuple[str, str, str]] = []

    cpu_rate, _ = cpu_ceiling(values)
    eng_rate = engine_throughput(values, truth)
    rows.append(("pure CPU ceiling (orjson + dict)", f"{cpu_rate:,.0f}", ""))
    rows.append(("rtstream engine alone (null sink)", f"{eng_rate:,.0f}", f"{eng_rate / cpu_rate:.0%} of CPU ceiling"))
    ses_rate = session_throughput(values)
    rows.append(("engine alone, session windows (gap 5m)", f"{ses_rate:,.0f}", f"{ses_rate / eng_rate:.0%} of tumbling"))
    cp = checkpoint_cost(values)
    rows.append(("checkpoint of an open hour, 10,000 keys", f"{cp['bytes'] / 1e6:.1f} MB",
                 f"snapshot {cp['snapshot_ms']:.0f} ms, save {cp['save_ms']:.0f} ms, restore {cp['restore_ms']:.0f} ms"))
    if not args.no_rss:
        # in a process of its own, so nothing this one holds counts
        code = "import orjson; from bench.engine_only import rss_scaling; print(orjson.dumps(rss_scaling()).decode())"
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        points = orjson.loads(out)
        (n1, r1), (n2, r2) = points[0], points[-1]
        rows.append((f"engine RSS, {n1 / 1e6:.0f}M -> {n2 / 1e6:.0f}M records, 10,000 keys",
                     f"{r1:.0f} -> {r2:.0f} MB", f"{(r2 - r1) / r1:+.1%} (goal: within 10%)"))
    if not args.skip_kafka:
        with TansuBroker() as broker, tempfile.TemporaryDirectory() as tmp:
            topic = f"events-{uuid.uuid4().hex[:6]}"
            load_s = asyncio.run(load_topic(broker.bootstrap, topic, values, args.partitions))
            print(f"loaded in {load_s:.1f}s", flush=True)
            raw_rate, _ = asyncio.run(raw_ceiling(broker.bootstrap, topic, f"raw-{uuid.uuid4().hex[:6]}", n))
            out_topic = f"results-{uuid.uuid4().hex[:6]}"
            asyncio.run(create_topic(broker.bootstrap, out_topic, args.partitions))
            took, rss_mb, err = run_rtstream(broker.bootstrap, topic, out_topic, Path(tmp))
            verify(asyncio.run(read_results(broker.bootstrap, out_topic, len(truth))), truth, "rtstream W1")
            rt_rate = n / took
            rows.append(("raw aiokafka ceiling (getmany + orjson + dict + produce)", f"{raw_rate:,.0f}", ""))
            rows.append(("rtstream W1 end to end (process start to exit)", f"{rt_rate:,.0f}",
                         f"{rt_rate / raw_rate:.0%} of raw ceiling; peak RSS {rss_mb:.0f} MB"))
            if args.workers > 1:
                out2 = f"results-{uuid.uuid4().hex[:6]}"
                asyncio.run(create_topic(broker.bootstrap, out2, args.partitions))
                took2, rss2, _ = run_rtstream(broker.bootstrap, topic, out2, Path(tmp), workers=args.workers)
                verify(asyncio.run(read_results(broker.bootstrap, out2, len(truth))), truth,
                       f"rtstream W1, workers = {args.workers}")
                rows.append((f"rtstream W1 end to end, workers = {args.workers}", f"{n / took2:,.0f}",
                             f"{took / took2:.2f} x one process; peak RSS {rss2:.0f} MB per worker"))
            m = re.search(r"p50 ([\d.]+)s, p99 ([\d.]+)s", err)
            if m:
                rows.append(("W1 window latency: watermark passed -> every sink has it", f"p99 {m.group(2)}s",
                             f"p50 {m.group(1)}s (goal: p99 within 1 s)"))
    width = max(len(r[0]) for r in rows)
    table = [f"| {'what':<{width}} | records/s | vs ceiling / goal |", f"|{'-' * (width + 2)}|----------:|------------|"]
    table += [f"| {a:<{width}} | {b:>9} | {c} |" for a, b, c in rows]
    print("\n".join(table))
    if not args.no_record:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        head = "" if RESULTS.exists() else "# Benchmark results\n\nEach `make bench` run appends its table here.\n"
        with open(RESULTS, "a") as fh:
            fh.write(f"{head}\n## {stamp}: W1, {n:,} records, {args.partitions} partitions\n\n"
                     f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n\n"
                     + "\n".join(table) + "\n")


if __name__ == "__main__":
    main()
