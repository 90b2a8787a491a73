"""Live latency: W1-like records at a steady rate with event time = now, Kafka -> aggregate -> Kafka.

    python -m bench.latency [--rate 50000] [--seconds 60] [--window 5s] [--lateness 1s]

Starts a Tansu broker on loopback, the real `rtstream run` process, a producer process sending at
`--rate` records/s, and a consumer of the results topic in this process. Two measures per window:

- the daemon's own (its exit log line): from the watermark letting the window go to every sink
  having acknowledged it;
- an independent one: from the moment the first record with event time >= end + lateness was
  generated (the watermark can pass no earlier) to the arrival of the window's last result row at
  the consumer.

Every window that closed while the producer ran is checked against an independent count and sum
per (window, user) of what was produced; a run whose output differs reports no figure. The daemon
is stopped with SIGTERM and must exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from bench.latency_reference import InputDelays, read_input
from rtstream.model.durations import parse_duration
from rtstream.testing.peers.tansu import TansuBroker, create_topic

ROOT = Path(__file__).resolve().parent.parent
KINDS = ["view", "click", "cart", "buy", "search"]
TICK_S = 0.005  # the producer sends what is due every 5 ms: a steady rate, event time = now
POOL = 1 << 16  # pre-drawn (user, amount, kind) tuples the producer cycles through


def partition_of(key: bytes, partitions: int) -> int:
    """The Java client's (and aiokafka's) partition for a key, so the input is keyed as W1's is."""
    from aiokafka.partitioner import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


# --- the producer process -----------------------------------------------------------------------
def produce_main(bootstrap: str, topic: str, partitions: int, rate: int, seconds: float, window_ms: int,
                 lateness_ms: int, users: int, out_path: str) -> None:
    summary = asyncio.run(_produce(bootstrap, topic, partitions, rate, seconds, window_ms, lateness_ms, users))
    Path(out_path).write_bytes(orjson.dumps(summary, option=orjson.OPT_NON_STR_KEYS))


async def _produce(bootstrap: str, topic: str, partitions: int, rate: int, seconds: float, window_ms: int,
                   lateness_ms: int, users: int) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    rnd = random.Random(7)
    part_of_user = [partition_of(f"u{u}".encode(), partitions) for u in range(users)]
    pool = []
    for _ in range(POOL):
        u = rnd.randrange(users)
        amount = round(rnd.uniform(1, 500), 2)
        kind = KINDS[rnd.randrange(5)]
        # the value around its event time: b'{"user_id":"u1","ts":' + ts + b',"amount":..}'
        pool.append((u, f"u{u}".encode(), b'{"user_id":"u%d","ts":' % u,
                     b',"amount":%s,"kind":"%s"}' % (repr(amount).encode(), kind.encode()), amount))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, max_batch_size=512 * 1024,
                                max_request_size=4 * 1024 * 1024, acks=1)
    await producer.start()
    truth: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0, 0.0]))
    crossing: dict[int, float] = {}  # window start -> when the first record at or past end + lateness was made
    last_ts = [0] * partitions
    builders = [producer.create_batch() for _ in range(partitions)]
    in_flight: list[asyncio.Task[Any] | None] = [None] * partitions
    acks: list[asyncio.Future[Any]] = []
    sent = i = 0
    t0 = time.time()
    next_close = None  # the smallest window start whose crossing is not yet recorded
    try:
        while True:
            now = time.time()
            if now - t0 >= seconds:
                break
            due = int((now - t0) * rate) - sent
            ts = int(now * 1000)
            if next_close is None:
                next_close = ts - ts % window_ms
            while next_close + window_ms + lateness_ms <= ts:
                crossing[next_close] = now
                next_close += window_ms
            ts_b = str(ts).encode()
            win = truth[ts - ts % window_ms]
            for _ in range(due):
                u, key, head, tail, amount = pool[i]
                i = (i + 1) & (POOL - 1)
                p = part_of_user[u]
                if builders[p].append(key=key, value=head + ts_b + tail, timestamp=None) is None:
                    await _submit(producer, topic, p, builders, in_flight, acks, wait=True)
                    builders[p].append(key=key, value=head + ts_b + tail, timestamp=None)
                acc = win[u]
                acc[0] += 1
                acc[1] += amount
                last_ts[p] = ts
            sent += due
            for p in range(partitions):
                task = in_flight[p]
                if builders[p].record_count() and (task is None or task.done()):
                    await _submit(producer, topic, p, builders, in_flight, acks, wait=False)
            await asyncio.sleep(max(0.0, TICK_S - (time.time() - now)))
        for p in range(partitions):
            if builders[p].record_count():
                await _submit(producer, topic, p, builders, in_flight, acks, wait=True)
        await asyncio.gather(*(t for t in in_flight if t is not None))
        await asyncio.gather(*acks)
        took = time.time() - t0
    finally:
        await producer.stop()
    return {"sent": sent, "seconds": took, "last_ts": last_ts, "crossing": crossing, "ack_waits": ACK_WAITS,
            "truth": {w: {f"u{u}": v for u, v in by_user.items()} for w, by_user in truth.items()}}


ACK_WAITS: list[tuple[float, float]] = []  # (batch handed over, seconds until the broker acknowledged it)


async def _submit(producer: Any, topic: str, p: int, builders: list[Any], in_flight: list[Any],
                  acks: list[Any], wait: bool) -> None:
    """Hand partition p's batch to the client; one batch per partition on its way at a time, so a
    slower broker gets bigger batches rather than a queue."""
    task = in_flight[p]
    if task is not None and not task.done():
        if not wait:
            return
        await task
    batch, builders[p] = builders[p], producer.create_batch()
    made = time.time()

    async def send() -> None:
        ack = await producer.send_batch(batch, topic, partition=p)
        ack.add_done_callback(lambda _: ACK_WAITS.append((made, time.time() - made)))
        acks.append(ack)

    in_flight[p] = asyncio.ensure_future(send())


# --- the results consumer -----------------------------------------------------------------------
class Results:
    """Every result row as it arrives: (window start, user) -> (events, spent), and per window the
    arrival of its last row."""

    def __init__(self) -> None:
        self.rows: dict[tuple[int, str], tuple[int, float]] = {}
        self.duplicates = 0
        self.last_arrival: dict[int, float] = {}
        self.per_window: dict[int, int] = defaultdict(int)
        self._starts: dict[str, int] = {}

    def add(self, value: bytes, arrived: float) -> None:
        d = orjson.loads(value)
        iso = d["window_start"]
        start = self._starts.get(iso)
        if start is None:
            start = self._starts[iso] = int(datetime.fromisoformat(iso).timestamp() * 1000)
        key = (start, d["user_id"])
        if key in self.rows:
            self.duplicates += 1
        else:
            self.per_window[start] += 1
        self.rows[key] = (d["events"], d["spent"])
        self.last_arrival[start] = arrived


async def consume(bootstrap: str, topic: str, results: Results, stop: asyncio.Event) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20,
                         auto_offset_reset="earliest")
    await c.start()
    try:
        parts = sorted(c.partitions_for_topic(topic) or ()) or sorted(
            (await c._client.fetch_all_metadata()).partitions_for_topic(topic) or ())
        c.assign([TopicPartition(topic, p) for p in parts])
        await c.seek_to_beginning()
        while not stop.is_set():
            data = await c.getmany(timeout_ms=50, max_records=20_000)
            arrived = time.time()
            for msgs in data.values():
                for m in msgs:
                    results.add(m.value, arrived)
    finally:
        await c.stop()


# --- the daemon ---------------------------------------------------------------------------------
def write_config(workdir: Path, bootstrap: str, topic: str, out_topic: str, window: str, lateness: str) -> Path:
    cfg = workdir / "latency.toml"
    cfg.write_text(f"""
[pipeline]
name = "latency"
flow = "events >> per_user >> results"
[window]
size = "{window}"
time = "event"
lateness = "{lateness}"
idle_timeout = "1h"
[sources.events]
type = "kafka"
bootstrap_servers = "{bootstrap}"
topics = ["{topic}"]
group_id = "latency-{uuid.uuid4().hex}"
[stages.per_user]
type = "aggregate"
key = "user_id"
aggregates = {{ events = "count()", spent = "sum(amount)" }}
[sinks.results]
type = "kafka"
bootstrap_servers = "{bootstrap}"
topic = "{out_topic}"
[daemon]
state_dir = "{workdir / 'state'}"
log_level = "info"
""")
    return cfg


async def wait_for_log(path: Path, pattern: str, proc: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace")
        if re.search(pattern, text):
            return text
        if proc.poll() is not None:
            raise SystemExit(f"rtstream exited {proc.returncode} before {pattern!r}:\n{text[-3000:]}")
        await asyncio.sleep(0.1)
    raise SystemExit(f"no {pattern!r} in the daemon's log within {timeout}s")


def _busy_cpus() -> float:
    """CPU seconds the whole machine has spent busy since boot."""
    with open("/proc/stat") as fh:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fh.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its waited-for children (the producer's)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace, bootstrap: str, broker_pid: int, workdir: Path) -> int:
    window_ms = round(parse_duration(args.window) * 1000)
    lateness_ms = round(parse_duration(args.lateness) * 1000)
    topic, out_topic = f"live-{uuid.uuid4().hex[:6]}", f"results-{uuid.uuid4().hex[:6]}"
    await create_topic(bootstrap, topic, args.partitions)
    await create_topic(bootstrap, out_topic, args.partitions)
    cfg = write_config(workdir, bootstrap, topic, out_topic, args.window, args.lateness)
    log_path = workdir / "daemon.log"
    cmd = [sys.executable, "-m", "rtstream", "run", "-c", str(cfg)]
    wall0, cpu0 = time.time(), _busy_cpus()
    ours0 = _cpu_seconds(os.getpid()) + _cpu_seconds(broker_pid)
    with open(log_path, "wb") as log_fh:
        daemon = subprocess.Popen(cmd, cwd=ROOT, stderr=log_fh, stdout=log_fh)
    profiler = None
    try:
        await wait_for_log(log_path, r"assigned \[", daemon, 60)
        if args.profile:
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            profiler = subprocess.Popen([spy, "record", "-r", "200", "-o", args.profile, "-f", "speedscope",
                                         "--pid", str(daemon.pid)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        results, stop = Results(), asyncio.Event()
        consumer = asyncio.create_task(consume(bootstrap, out_topic, results, stop))
        delays = InputDelays() if args.reference else None
        reference = asyncio.create_task(read_input(bootstrap, topic, args.partitions, delays, stop)) if delays else None
        await asyncio.sleep(1.0)  # the consumer is assigned and at the beginning before anything is produced
        summary_path = workdir / "produced.json"
        producer = mp.get_context("spawn").Process(target=produce_main, args=(
            bootstrap, topic, args.partitions, args.rate, args.seconds, window_ms, lateness_ms, args.users,
            str(summary_path)))
        producer.start()
        await asyncio.to_thread(producer.join)
        if producer.exitcode != 0:
            raise SystemExit(f"the producer exited {producer.exitcode}")
        summary = orjson.loads(summary_path.read_bytes())
        truth = {int(w): rows for w, rows in summary["truth"].items()}
        horizon = min(summary["last_ts"])  # every partition has delivered up to here
        closed = sorted(w for w in truth if w + window_ms + lateness_ms <= horizon)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(results.per_window.get(w, 0) < len(truth[w]) for w in closed):
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # anything late or duplicated shows up too
        stop.set()
        await consumer
        if reference is not None:
            await reference
    finally:
        took = time.time() - wall0
        busy = (_busy_cpus() - cpu0) / took
        ours = (_cpu_seconds(os.getpid()) + _cpu_seconds(broker_pid) + _cpu_seconds(daemon.pid) - ours0) / took
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
        daemon.send_signal(signal.SIGTERM)
        rc = await asyncio.to_thread(daemon.wait, 60)
        if profiler is not None:
            await asyncio.to_thread(profiler.wait, 30)
    log_text = log_path.read_text(errors="replace")
    (Path(args.keep_log) if args.keep_log else workdir / "kept.log").write_text(log_text)
    rate = summary["sent"] / summary["seconds"]
    print(f"machine: {busy:.2f} of {os.cpu_count()} CPUs busy during the run, {busy - ours:.2f} of them outside "
          "this bench (other processes: figures are comparable only between runs with little of that)")
    print(f"producer: {summary['sent']:,} records in {summary['seconds']:.1f}s = {rate:,.0f} records/s "
          f"(asked {args.rate:,})")
    if rc != 0:
        print(f"rtstream exited {rc} after SIGTERM; no figure\n{log_text[-3000:]}")
        return 1
    problems = verify(results, truth, closed)
    if problems:
        print("output differs from what was produced; no figure:\n  " + "\n  ".join(problems[:10]))
        return 1
    print(f"verified: {len(closed)} windows, {sum(len(truth[w]) for w in closed):,} rows (count and sum per "
          f"window and user), {results.duplicates} duplicates; daemon exited 0 on SIGTERM")
    crossing = {int(w): t for w, t in summary["crossing"].items()}
    lat = [results.last_arrival[w] - crossing[w] for w in closed]
    m = re.search(r"p50 ([\d.]+)s, p99 ([\d.]+)s, max ([\d.]+)s", log_text)
    flush_ms = [int(x) for x in re.findall(r"rows out, (\d+) ms", log_text)]
    ack_waits = summary["ack_waits"]
    for w, seconds in zip(closed, lat, strict=True):
        # the broker's side: how long the producer's batches around the crossing waited for their ack
        near = [wait for made, wait in ack_waits if crossing[w] - 0.5 <= made <= crossing[w] + seconds]
        plain = "" if delays is None else \
            f"; a plain reader of the input meanwhile {delays.worst_between(crossing[w], crossing[w] + seconds):.3f}s late"
        print(f"  window {datetime.fromtimestamp(w / 1000).strftime('%H:%M:%S')}: {len(truth[w]):>6,} rows, "
              f"last row {seconds:.3f}s after the first record past its end + lateness; slowest produce ack "
              f"meanwhile {max(near, default=0.0):.3f}s{plain}")
    print(f"independent (first record past end + lateness made -> last result row consumed): p50 {pct(lat, 0.5):.3f}s, "
          f"p99 {pct(lat, 0.99):.3f}s, max {max(lat):.3f}s over {len(lat)} windows")
    if m:
        print(f"daemon (watermark let the window go -> every sink acknowledged): p50 {m.group(1)}s, "
              f"p99 {m.group(2)}s, max {m.group(3)}s")
    if flush_ms:
        print(f"daemon flush per window (ms): {flush_ms}")
    return 0


def verify(results: Results, truth: dict[int, dict[str, list[float]]], closed: list[int]) -> list[str]:
    problems = []
    got_windows = {w for w, _ in results.rows}
    if not closed:
        problems.append("no window closed while the producer ran: run longer")
    for w in closed:
        want = truth[w]
        got = {u: v for (gw, u), v in results.rows.items() if gw == w}
        if set(got) != set(want):
            problems.append(f"window {w}: {len(got)} users, expected {len(want)}")
            continue
        for u, (n, s) in want.items():
            gn, gs = got[u]
            if gn != n or abs(gs - s) > 1e-6 * max(1.0, abs(s)):
                problems.append(f"window {w} user {u}: got ({gn}, {gs}), expected ({n}, {s})")
                break
    extra = got_windows - set(closed)
    if extra:
        problems.append(f"rows of windows that should still be open: {sorted(extra)}")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.latency")
    ap.add_argument("--rate", type=int, default=50_000, help="records/s the producer sends")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--window", default="5s")
    ap.add_argument("--lateness", default="1s")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--profile", help="write a py-spy (speedscope) profile of the daemon here")
    ap.add_argument("--keep-log", help="copy the daemon's log here")
    ap.add_argument("--reference", action="store_true", help="also read the input with a plain consumer and say "
                    "how late records reached it (bench.latency_reference)")
    args = ap.parse_args()
    print(f"live latency: {args.rate:,} records/s for {args.seconds:.0f}s, windows of {args.window}, lateness "
          f"{args.lateness}, {args.partitions} partitions, {args.users:,} users; {os.cpu_count()} cores", flush=True)
    with TansuBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        assert broker.proc is not None
        sys.exit(asyncio.run(run(args, broker.bootstrap, broker.proc.pid, Path(tmp))))


if __name__ == "__main__":
    main()
