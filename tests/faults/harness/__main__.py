"""python -m tests.faults.harness --seed N: replay one scenario; --seeds A-B: many, with the figures."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.faults.harness import proc
from tests.faults.harness.kinds import EDGE_KINDS
from tests.faults.harness.runner import Result, replay_command, run_seed
from tests.faults.harness.scenario import KNOWN_BUGS


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        seeds.extend(range(int(a), int(b) + 1) if b else [int(a)])
    return seeds


def summary(results: list[Result], wall: float) -> str:
    faults: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    figures: Counter[str] = Counter()
    for r in results:
        faults.update(r.faults)
        kinds[f"{r.scenario.kind}{'-finite' if r.scenario.finite else ''}"] += 1
        figures.update(r.verdict.figures)
    failed = [r for r in results if not r.ok]
    times = sorted(r.seconds for r in results)
    lines = [
        f"SUMMARY seeds {len(results)}, passed {len(results) - len(failed)}, failed {len(failed)}, wall {wall:.0f}s, "
        f"per seed median {times[len(times) // 2]:.1f}s max {times[-1]:.1f}s",
        f"  scenarios by source: {dict(kinds)}",
        f"  faults injected by kind: {dict(faults)} (total {sum(faults.values())})",
        f"  figures: {dict(figures)}",
    ]
    for r in failed:
        lines.append(f"  FAILED seed {r.scenario.seed}: {r.verdict.failures[0][:300]}  -> {replay_command(r.scenario)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.faults.harness", description=__doc__)
    ap.add_argument("--seed", type=int, help="one seed")
    ap.add_argument("--seeds", help="a list or ranges, e.g. 1-200 or 3,7,10-12")
    ap.add_argument("--fast", action="store_true", help="the small scenarios of make test")
    ap.add_argument("--known-bugs", default="", help=f"product bugs to step around: {', '.join(KNOWN_BUGS)}")
    ap.add_argument("--keep", action="store_true", help="keep every run's folder (a failing one is always kept)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--kinds", default="", help=f"only scenarios of these newer kinds: {', '.join(EDGE_KINDS)} "
                                                "(or 'edge' for all four); default: the seed decides")
    ap.add_argument("--rtstream", type=Path, default=None,
                    help="run this rtstream executable as the daemon (e.g. an older tree's venv/bin/rtstream)")
    ap.add_argument("--plain-sql-cursor", action="store_true",
                    help="for a daemon without the sql source's tiebreak_field and settle: WHERE ts/id > :cursor")
    args = ap.parse_args(argv)
    if args.rtstream is not None:
        proc.TARGET[:] = [str(args.rtstream.resolve())]
    proc.PLAIN_SQL_CURSOR = args.plain_sql_cursor
    only = frozenset(EDGE_KINDS if args.kinds == "edge" else [k for k in args.kinds.split(",") if k])
    if only - set(EDGE_KINDS):
        ap.error(f"--kinds: unknown {sorted(only - set(EDGE_KINDS))}; known: {', '.join(EDGE_KINDS)}")
    # stopped with SIGTERM, still stop the replicas, the broker and the receiver of the seed running
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    seeds = [args.seed] if args.seed is not None else parse_seeds(args.seeds or "1-10")
    root = args.workdir or Path(tempfile.mkdtemp(prefix="rtstream-harness-"))
    results = []
    began = time.monotonic()
    for seed in seeds:
        workdir = root / f"seed-{seed}"
        if workdir.exists():
            shutil.rmtree(workdir)
        r = run_seed(seed, workdir, fast=args.fast,
                     known=frozenset(k for k in args.known_bugs.split(",") if k), only=only)
        print(r.report(), flush=True)
        if r.ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        results.append(r)
    if len(results) > 1:
        print(summary(results, time.monotonic() - began))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
