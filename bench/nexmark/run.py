"""`python -m bench.nexmark`: the Nexmark queries in rtstream and in Flink SQL, on the same events.

    python -m bench.nexmark [--events N] [--queries q0,q1,...] [--skip-flink] [--skip-kafka] [--no-record]

Writes N events (bench/nexmark/gen.py) to a JSON-lines file and to a topic of a Tansu broker it
starts on loopback, then for each query measures, each run a fresh child process charged its CPU
seconds (user + system):
- rtstream, the nexmark source -> a null sink (Nexmark's own way: the generator inside the job);
- rtstream, the file -> files;
- rtstream, the topic -> a topic (static assignment, stop at the end);
- Flink SQL (PyFlink 2.3.0, parallelism 1, bench/.venv-flink), the file -> files.
Every output is checked against tests/nexmark_reference.py (row count and content digest; the null
sink's row count) before a figure is reported. Figures are events per second per core: all N
events (persons, auctions and bids) over the CPU seconds of the whole run, start-up included, and
over the CPU seconds beyond the engine's start-up (the same run on 1,000 events).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.kafka_runs import measured
from bench.nexmark.flink_side import FLINK_PY, flink_run
from bench.nexmark.gen import produce, write_file
from bench.nexmark.outputs import file_digest, null_count, topic_digest
from bench.nexmark.variants import QUERIES, derive
from rtstream.model.nexmark import Nexmark
from rtstream.testing.peers.tansu import TansuBroker, create_topic
from tests import nexmark_reference as ref
from tests.support import write_config

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "RESULTS.md"
SMALL = 1000  # events of the start-up run


@dataclass
class Figure:
    query: str
    how: str
    events: int
    cpu_s: float
    wall_s: float
    startup_cpu_s: float

    @property
    def per_core(self) -> float:
        return self.events / self.cpu_s

    @property
    def per_core_steady(self) -> float | None:
        """None where the run cost no more than start-up (too few events to tell)."""
        beyond = self.cpu_s - self.startup_cpu_s
        return self.events / beyond if beyond > 0.05 * self.cpu_s else None


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_rtstream(doc: dict[str, Any], workdir: Path) -> tuple[float, float]:
    """(wall s, CPU s) of one `rtstream run` from process start to exit."""
    cfg = write_config(workdir / "q.toml", doc)
    c0 = _children_cpu()
    wall, _, _ = measured([sys.executable, "-m", "rtstream", "run", "-c", str(cfg)])
    return wall, _children_cpu() - c0


def _events(n: int) -> Any:
    model = Nexmark()
    return itertools.chain.from_iterable(model.generate(lo, min(lo + 50_000, n)) for lo in range(0, n, 50_000))


def _check(query: str, how: str, got: tuple[int, str], want: tuple[int, str]) -> None:
    if got != want:
        raise SystemExit(f"{query} {how}: {got[0]} rows, digest {got[1]}; the reference has {want[0]} rows, "
                         f"digest {want[1]}: not reporting a figure")


def measure_query(query: str, n: int, work: Path, data: Path, small: Path, bootstrap: str | None,
                  topic: str | None, flink: bool) -> list[Figure]:
    want = ref.reference_digest(query, _events(n))
    figures = []
    runs: list[tuple[str, dict[str, Any]]] = [("generator -> null", {"sink": "null"}),
                                              ("file -> file", {"source": "file"})]
    if bootstrap is not None:
        runs.append(("topic -> topic", {"source": "kafka", "sink": "kafka"}))
    for how, opts in runs:
        walls = []
        for events, path in ((SMALL, small), (n, data)):
            wd = work / f"{query}-{how.split()[0]}-{events}"
            wd.mkdir()
            extra: dict[str, Any] = {}
            if opts.get("source") == "file":
                extra["file"] = path
            if opts.get("source") == "kafka":
                out_topic = f"{query}-out-{events}-{int(time.time())}"
                asyncio.run(create_topic(bootstrap, out_topic))  # type: ignore[arg-type]
                extra.update(bootstrap=bootstrap, in_topic=f"{topic}-{events}", out_topic=out_topic)
            doc = derive(query, wd, events=events, **opts, **extra)
            walls.append(run_rtstream(doc, wd))
            if events == n:
                if opts.get("sink") == "null":
                    got_n = null_count(wd)
                    if got_n != want[0]:
                        raise SystemExit(f"{query} {how}: {got_n} rows, the reference {want[0]}")
                elif opts.get("sink") == "kafka":
                    _check(query, how, asyncio.run(topic_digest(bootstrap, out_topic, query, want[0])), want)  # type: ignore[arg-type]
                else:
                    _check(query, how, file_digest(wd / "out", query), want)
        figures.append(Figure(query, f"rtstream {how}", n, walls[1][1], walls[1][0], walls[0][1]))
        print(f"  {figures[-1].how}: {figures[-1].per_core:,.0f} events/s per core", flush=True)
    if flink:
        small_cpu = flink_run(query, small, work / f"{query}-flink-small")[1]
        wall, cpu = flink_run(query, data, work / f"{query}-flink")
        _check(query, "Flink", file_digest(work / f"{query}-flink", query), want)
        figures.append(Figure(query, "Flink SQL file -> file", n, cpu, wall, small_cpu))
        print(f"  Flink: {figures[-1].per_core:,.0f} events/s per core", flush=True)
    return figures


def table(figures: list[Figure]) -> str:
    lines = ["| query | run | CPU s | events/s per core | beyond start-up | start-up CPU s | wall s |",
             "|---|---|---|---|---|---|---|"]
    for f in figures:
        steady = "-" if f.per_core_steady is None else f"{f.per_core_steady:,.0f}"
        lines.append(f"| {f.query} | {f.how} | {f.cpu_s:.1f} | {f.per_core:,.0f} | {steady} | {f.startup_cpu_s:.1f} | "
                     f"{f.wall_s:.1f} |")
    by = {(f.query, f.how): f for f in figures}
    ratios = []
    for q in dict.fromkeys(f.query for f in figures):
        flink = by.get((q, "Flink SQL file -> file"))
        mine = by.get((q, "rtstream file -> file"))
        if flink and mine:
            steady = ""
            if mine.per_core_steady and flink.per_core_steady:
                steady = f" ({mine.per_core_steady / flink.per_core_steady:.2f} x beyond start-up)"
            ratios.append(f"{q} {mine.per_core / flink.per_core:.2f} x{steady}")
    if ratios:
        lines += ["", "rtstream file -> file over Flink SQL file -> file, events/s per core: " + "; ".join(ratios) + "."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.nexmark")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--queries", default=",".join(QUERIES))
    ap.add_argument("--skip-flink", action="store_true")
    ap.add_argument("--skip-kafka", action="store_true")
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = ap.parse_args()
    queries = [q.strip() for q in args.queries.split(",") if q.strip()]
    unknown = [q for q in queries if q not in QUERIES]
    if unknown:
        ap.error(f"unknown queries {unknown}; runnable: {', '.join(QUERIES)}")
    flink = not args.skip_flink
    if flink and not FLINK_PY.exists():
        ap.error(f"{FLINK_PY} is missing: python3 -m venv bench/.venv-flink && "
                 "bench/.venv-flink/bin/pip install apache-flink==2.3.0 (or --skip-flink)")
    n = args.events
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="nexmark-") as tmp:
        work = Path(tmp)
        data, small = work / "events.jsonl", work / "small.jsonl"
        print(f"Nexmark: {n:,} events -> {data}", flush=True)
        write_file(data, Nexmark(), n)
        write_file(small, Nexmark(), SMALL)
        broker = None if args.skip_kafka else TansuBroker()
        try:
            topic = None
            if broker is not None:
                broker.start()
                topic = "nexmark-events"
                asyncio.run(produce(broker.bootstrap, f"{topic}-{n}", Nexmark(), n))
                asyncio.run(produce(broker.bootstrap, f"{topic}-{SMALL}", Nexmark(), SMALL))
            for q in queries:
                print(f"{q}:", flush=True)
                figures += measure_query(q, n, work, data, small, broker.bootstrap if broker else None, topic, flink)
        finally:
            if broker is not None:
                broker.stop()
    text = table(figures)
    print(text)
    if not args.no_record:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        with open(RESULTS, "a") as fh:
            fh.write(f"\n### Nexmark run of {stamp}: {n:,} events, {', '.join(queries)} (`python -m bench.nexmark`)\n\n"
                     f"{text}\n")
