"""`make bench`: the ceilings and rtstream side by side on workload W1, in one run.

    python -m bench [--records N] [--partitions 4] [--skip-kafka] [--big N] [--rounds R]

The main table is W1 at --records (1,000,000). Then, with --big (4,000,000 by default; 0 skips it),
the raw aiokafka loop, rtstream in one process and rtstream with workers run side by side on a topic
of that many records, interleaved for --rounds rounds, each run's output verified; the table shows
each one's best round, with CPU seconds per record.

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
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bench.ceilings import cpu_ceiling
from bench.engine_only import engine_throughput
from bench.kafka_runs import load_topic, raw_run, rtstream_run, side_by_side
from bench.state import checkpoint_cost, session_throughput
from bench.workload import reference, w1_values
from rtstream.testing.peers.tansu import TansuBroker

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--skip-kafka", action="store_true", help="only the in-memory engine and CPU ceiling")
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    ap.add_argument("--no-rss", action="store_true", help="skip the 1M -> 10M records RSS run (about a minute)")
    ap.add_argument("--workers", type=int, default=2, help="also run W1 with [daemon] workers = N (0: skip)")
    ap.add_argument("--big", type=int, default=4_000_000, help="records of the side-by-side Kafka table (0: skip)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the side-by-side table")
    ap.add_argument("--assignments", default="group,static", help="Kafka source assignments to run side by side, "
                    "comma-separated (group, static)")
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
    big: list[str] = []
    if not args.skip_kafka:
        with TansuBroker() as broker, tempfile.TemporaryDirectory() as tmp:
            topic = f"events-{uuid.uuid4().hex[:6]}"
            load_s = asyncio.run(load_topic(broker.bootstrap, topic, values, args.partitions))
            print(f"loaded in {load_s:.1f}s", flush=True)
            raw = raw_run(broker.bootstrap, topic, n)
            one = rtstream_run(broker.bootstrap, topic, args.partitions, truth, Path(tmp))
            rows.append((raw.what, f"{raw.rate:,.0f}", f"CPU {raw.cpu_us_per_record:.2f} us/record"))
            rows.append((one.what + " (process start to exit)", f"{one.rate:,.0f}",
                         f"{one.rate / raw.rate:.0%} of raw loop; CPU {one.cpu_us_per_record:.2f} us/record; "
                         f"peak RSS {one.rss_mb:.0f} MB"))
            if args.workers > 1:
                many = rtstream_run(broker.bootstrap, topic, args.partitions, truth, Path(tmp), workers=args.workers)
                rows.append((many.what, f"{many.rate:,.0f}",
                             f"{many.rate / one.rate:.2f} x one process; peak RSS {many.rss_mb:.0f} MB per worker"))
            end = re.search(r"end of every assigned partition, ([\d.]+)s after the last record", one.log)
            if end:
                cautious = "quiet period" in one.log
                rows.append(("W1 end of input decided after the last record", f"{end.group(1)} s",
                             "the broker's end offsets ran short: quiet period (goal 0.3 s applies where they agree)"
                             if cautious else "from the broker's end offsets (goal: within 0.3 s)"))
            m = re.search(r"p50 ([\d.]+)s, p99 ([\d.]+)s", one.log)
            if m:
                rows.append(("W1 window latency: watermark passed -> every sink has it", f"p99 {m.group(2)}s",
                             f"p50 {m.group(1)}s (catch-up burst)"))
            if args.big:
                del values
                big_values = w1_values(args.big)
                big_truth = reference(big_values)
                big_topic = f"events-big-{uuid.uuid4().hex[:6]}"
                load_s = asyncio.run(load_topic(broker.bootstrap, big_topic, big_values, args.partitions))
                del big_values
                print(f"loaded {args.big:,} records in {load_s:.1f}s", flush=True)
                big = side_by_side(broker.bootstrap, big_topic, args.partitions, big_truth, Path(tmp),
                                   args.workers, args.rounds, tuple(args.assignments.split(",")))
    width = max(len(r[0]) for r in rows)
    table = [f"| {'what':<{width}} | records/s | vs ceiling / goal |", f"|{'-' * (width + 2)}|----------:|------------|"]
    table += [f"| {a:<{width}} | {b:>9} | {c} |" for a, b, c in rows]
    print("\n".join(table))
    if big:
        print("\n".join(big))
    if not args.no_record:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        head = "" if RESULTS.exists() else "# Benchmark results\n\nEach `make bench` run appends its table here.\n"
        with open(RESULTS, "a") as fh:
            fh.write(f"{head}\n## {stamp}: W1, {n:,} records, {args.partitions} partitions\n\n"
                     f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n\n"
                     + "\n".join(table) + "\n")
            if big:
                fh.write(f"\n### Side by side: W1 at {args.big:,} records, best of {args.rounds} interleaved rounds, "
                         "each output verified\n\n" + "\n".join(big) + "\n")


if __name__ == "__main__":
    main()
