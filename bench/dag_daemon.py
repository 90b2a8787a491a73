"""Issue #25's second speed goal: 100 DAGs in one daemon, each every 10 s; runs start within 100 ms
of their interval (p99) and the daemon's RSS stays under 300 MB.

`rtstream run --dags DIR` on DAGS generated DAG files (python -> python -> bash, as the three-task
DAG), each `schedule=timedelta(seconds=EVERY)` with one start_date a little after the daemon starts, so
every interval of every DAG ends on the same instant (the worst case: all DAGs due at once) and no
run is a catch-up. After about --seconds, the bench waits until every interval that has ended has
its run succeeded, then SIGTERMs the daemon (it must exit 0) and reads STATE_DIR/dag_runs.db:
- verified: per DAG, the runs of the intervals ended by then are exactly start_date + k * EVERY,
  k = 0.. (none missing, none doubled), each run and each of its task instances `success`;
- lateness: a run's start_date minus its data interval's end, p50 / p99 / max over every run, and
  the first task's try start (table task_try, written by another part of the daemon) likewise;
- the daemon's peak RSS (VmHWM of /proc/PID/status, the process's own high-water mark, read just
  before the SIGTERM; the bash tasks' processes are not the daemon's) and its CPU seconds;
- the runner's overhead per run as the task log sees it: interval end to the last try's end, minus
  the tries' durations (table task_try).
"""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.dag_overhead import pct

DAG_TEXT = '''\
from datetime import datetime, timedelta, timezone
from airflow import DAG
from airflow.operators.python import PythonOperator
from airflow.operators.bash import BashOperator


def extract():
    return len([{{"id": i}} for i in range(1000)])


def transform(ti):
    return sum(range(ti.xcom_pull(task_ids="extract")))


with DAG({dag_id!r}, start_date=datetime.fromtimestamp({start}, timezone.utc),
         schedule=timedelta(seconds={every}), catchup=False) as dag:
    a = PythonOperator(task_id="extract", python_callable=extract)
    b = PythonOperator(task_id="transform", python_callable=transform)
    c = BashOperator(task_id="load", bash_command="echo {{{{ ti.xcom_pull(task_ids='transform') }}}}")
    a >> b >> c
'''
TASKS = 3


def _proc(pid: int) -> tuple[float, float]:
    """(VmHWM MB, CPU seconds) of a live process."""
    hwm = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return hwm, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _busy() -> float:
    """CPUs busy on the whole machine since boot's counters: call twice and subtract."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    vals = list(map(int, parts))
    return (sum(vals) - vals[3] - vals[4]) / os.sysconf("SC_CLK_TCK")


def _ended(db: Path, until: datetime) -> int:
    """Runs succeeded of the intervals ended by `until`."""
    if not db.exists():
        return 0
    with sqlite3.connect(db, timeout=30) as con:
        ok = con.execute("SELECT count(*) FROM dag_run WHERE state = 'success' AND interval_end <= ?",
                         (until.isoformat(),)).fetchone()[0]
    return int(ok)


def many_dags(work: Path, dags: int, every: int, seconds: float) -> list[str]:
    folder, state = work / "dags100", work / "state100"
    folder.mkdir(parents=True, exist_ok=True)
    # every start_date the same instant, on a multiple of EVERY, at least 20 s ahead: time to load them
    start = math.ceil((time.time() + 20) / every) * every
    for i in range(dags):
        (folder / f"tick_{i:03d}.py").write_text(DAG_TEXT.format(dag_id=f"tick_{i:03d}", start=start, every=every))
    log = open(work / "daemon100.log", "wb")
    busy0, t0 = _busy(), time.time()
    proc = subprocess.Popen([sys.executable, "-m", "rtstream", "run", "--dags", str(folder), "--set",
                             f"daemon.state_dir={state}"], stdout=log, stderr=subprocess.STDOUT)
    db = state / "dag_runs.db"
    first_end = datetime.fromtimestamp(start, UTC) + timedelta(seconds=every)
    try:
        while time.time() < start + every + seconds:
            if proc.poll() is not None:
                raise RuntimeError(f"the daemon exited {proc.returncode}: see {work / 'daemon100.log'}")
            time.sleep(0.5)
        # the intervals ended by now: wait (30 s at most) until each has its run succeeded
        intervals = int((time.time() - start) // every)
        until = datetime.fromtimestamp(start + intervals * every, UTC)
        deadline = time.time() + 30
        while _ended(db, until) < intervals * dags and time.time() < deadline:
            time.sleep(0.5)
        hwm_mb, cpu_s = _proc(proc.pid)
        wall = time.time() - t0
        busy = (_busy() - busy0) / wall
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    if code != 0:
        raise RuntimeError(f"the daemon exited {code} on SIGTERM: see {work / 'daemon100.log'}")
    late, first_try, overhead = verify(db, dags, start, every, intervals)
    cores = os.cpu_count() or 1
    return [
        "| what | p50 | p99 | max | goal |", "|---|---:|---:|---:|---|",
        f"| run start - its data interval's end, ms ({len(late)} runs) | {pct(late, 50):.0f} | {pct(late, 99):.0f} "
        f"| {max(late):.0f} | p99 < 100 ms |",
        f"| the first task's try started (task_try) - the interval's end, ms | {pct(first_try, 50):.0f} | "
        f"{pct(first_try, 99):.0f} | {max(first_try):.0f} | |",
        f"| interval end -> last task done, minus the tries' durations (task_try), ms | {pct(overhead, 50):.0f} | "
        f"{pct(overhead, 99):.0f} | {max(overhead):.0f} | |",
        "",
        f"Daemon peak RSS (VmHWM): **{hwm_mb:.0f} MB** (goal < 300 MB); its CPU {cpu_s:.1f} s over "
        f"{wall:.0f} s wall; machine {busy:.2f} of {cores} CPUs busy meanwhile (this bench and everything else).",
        f"Verified: {dags} DAGs x {intervals} intervals of {every} s = {len(late)} runs, every one `success` with "
        f"its {TASKS} task instances `success`, per DAG the intervals contiguous from the start_date, none missing "
        f"or doubled; the daemon exited 0 on SIGTERM. First interval end {first_end:%H:%M:%S} UTC.",
    ]


def verify(db: Path, dags: int, start: int, every: int,
           intervals: int) -> tuple[list[float], list[float], list[float]]:
    """Per run (ms): lateness, the first try's start after the interval's end, and the runner's
    overhead, of the verified runs; raises on any gap or failure."""
    d = datetime.fromisoformat
    with sqlite3.connect(db) as con:
        runs = con.execute("SELECT dag_id, run_id, interval_start, interval_end, state, start_date FROM dag_run "
                           "ORDER BY dag_id, interval_start").fetchall()
        tis = con.execute("SELECT dag_id, run_id, state FROM task_instance").fetchall()
        tries = con.execute("SELECT dag_id, run_id, max(end_date), sum(duration), min(start_date) FROM task_try "
                            "GROUP BY dag_id, run_id").fetchall()
    ti_states: dict[tuple[str, str], list[str]] = {}
    for dag_id, run_id, st in tis:
        ti_states.setdefault((dag_id, run_id), []).append(st)
    try_by = {(a, b): (c, e, f) for a, b, c, e, f in tries}
    base = datetime.fromtimestamp(start, UTC)
    late: list[float] = []
    overhead: list[float] = []
    first_try: list[float] = []
    by_dag: dict[str, list[tuple[str, str, str, str, str, str]]] = {}
    for row in runs:
        by_dag.setdefault(row[0], []).append(row)
    if len(by_dag) != dags:
        raise RuntimeError(f"runs of {len(by_dag)} DAGs, expected {dags}")
    for dag_id, rows in by_dag.items():
        kept = [r for r in rows if d(r[3]) <= base + timedelta(seconds=every * intervals)]
        want = [base + timedelta(seconds=every * k) for k in range(intervals)]
        if [d(r[2]) for r in kept] != want:
            raise RuntimeError(f"{dag_id}: intervals {[r[2] for r in kept]}, expected {want}")
        for _, run_id, _, end, state, started in kept:
            states = ti_states.get((dag_id, run_id), [])
            if state != "success" or states != ["success"] * TASKS:
                raise RuntimeError(f"{dag_id} {run_id}: run {state}, task instances {states}")
            late.append((d(started) - d(end)).total_seconds() * 1000)
            last, spent, first = try_by[(dag_id, run_id)]
            first_try.append((d(first) - d(end)).total_seconds() * 1000)
            overhead.append(((d(last) - d(end)).total_seconds() - spent) * 1000)
    return late, first_try, overhead
