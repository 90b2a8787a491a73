"""`make bench`'s DAG figures (issue #25's speed goals), every run verified before a figure is given.

    python -m bench.dags [--runs N] [--cli-runs N] [--airflow PATH/bin/airflow] [--airflow-runs N]
                         [--dags 100] [--every 10] [--seconds 60] [--no-record]

1. A three-task DAG (python -> python -> bash): rtstream's overhead per run in process and under
   `rtstream dags test --json`, and `airflow dags test` on the same file when --airflow is given
   (bench/dag_overhead.py).
2. --dags DAGs each every --every seconds in one `rtstream run --dags` for about --seconds: the
   start lateness of each run and the daemon's peak RSS (bench/dag_daemon.py). --dags 0 skips it.

Prints both tables and appends them to bench/RESULTS.md (unless --no-record).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.dag_daemon import many_dags
from bench.dag_overhead import three_task

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.dags")
    ap.add_argument("--runs", type=int, default=200, help="in-process runs of the three-task DAG")
    ap.add_argument("--cli-runs", type=int, default=30, help="`rtstream dags test` runs (a process each)")
    ap.add_argument("--airflow", type=Path, help="the `airflow` of an Airflow venv: also `airflow dags test`")
    ap.add_argument("--airflow-runs", type=int, default=10, help="`airflow dags test` runs")
    ap.add_argument("--dags", type=int, default=100, help="DAGs in one daemon (0: skip)")
    ap.add_argument("--every", type=int, default=10, help="seconds between a DAG's intervals")
    ap.add_argument("--seconds", type=float, default=60, help="how long the daemon runs its DAGs")
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = ap.parse_args()
    if args.airflow is not None and not args.airflow.exists():
        ap.error(f"--airflow: {args.airflow} does not exist")
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-dags-") as tmp:
        print("three-task DAG (python -> python -> bash):", flush=True)
        first = three_task(args.runs, args.cli_runs, args.airflow_runs, args.airflow, Path(tmp))
        print("\n".join(first), flush=True)
        second: list[str] = []
        if args.dags:
            print(f"\n{args.dags} DAGs every {args.every} s in one daemon, about {args.seconds:.0f} s:", flush=True)
            second = many_dags(Path(tmp), args.dags, args.every, args.seconds)
            print("\n".join(second), flush=True)
    load1 = os.getloadavg()[0]
    if args.no_record:
        return
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    with open(RESULTS, "a") as fh:
        fh.write(f"\n## {stamp}: DAGs (`python -m bench.dags`, issue #25's speed goals)\n\n"
                 f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
                 f"load average {load0:.1f} at the start, {load1:.1f} at the end.\n\n"
                 "### A three-task DAG (python -> python -> bash): overhead per run, ms\n\n"
                 + "\n".join(first) + "\n")
        if second:
            fh.write(f"\n### {args.dags} DAGs every {args.every} s in one `rtstream run --dags`\n\n"
                     + "\n".join(second) + "\n")


if __name__ == "__main__":
    main()
