"""Issue #25's first speed goal: a three-task DAG (python -> python -> bash), rtstream's overhead per
run (run start to the last task done, minus the tasks' own time) under 20 ms p99, against Airflow.

The DAG file is one for both: each task notes its own start and end (wall clock, time.time()) in a
file, so the tasks' own time is measured the same way under rtstream and under Airflow, by the tasks
and not by the runner being measured. The Bash task notes from its first command to its last: the
spawn of bash itself is charged to the runner (its floor, `bash -c` from Python, is measured too).

Three ways, each verified (every run succeeded, each task noted exactly once per run):
- in process: rtstream.airflow.dag_run.DagRun(...).run() N times in one event loop;
- `rtstream dags test FILE --json` N times, each a fresh process;
- `airflow dags test` N times on the same file (with --airflow): a throwaway AIRFLOW_HOME,
  `airflow db migrate` once.
Each process run gives two figures: from the process start (Python, imports, reading the DAG: what a
user waits for) and from the first task's start (the runner's own scheduling between tasks).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

DAG_ID = "bench_three_tasks"
DAG_TEXT = '''\
import time
from datetime import datetime
from airflow import DAG
from airflow.operators.python import PythonOperator
from airflow.operators.bash import BashOperator

TIMES = {times!r}


def _note(task, t0):
    t1 = time.time()
    with open(TIMES, "a") as fh:
        fh.write(f"{{task}} {{t0:.6f}} {{t1:.6f}}\\n")


def extract():
    t0 = time.time()
    rows = [{{"id": i, "amount": i * 0.5}} for i in range(1000)]
    _note("extract", t0)
    return len(rows)


def transform(ti):
    t0 = time.time()
    n = ti.xcom_pull(task_ids="extract")
    total = sum(i * 0.5 for i in range(n))
    _note("transform", t0)
    return total


with DAG({dag_id!r}, start_date=datetime(2026, 1, 1), schedule=None, catchup=False) as dag:
    a = PythonOperator(task_id="extract", python_callable=extract)
    b = PythonOperator(task_id="transform", python_callable=transform)
    c = BashOperator(task_id="load", bash_command=(
        's=$(date +%s.%N); echo "{{{{ ti.xcom_pull(task_ids=\\'transform\\') }}}}" > /dev/null; '
        'echo "load $s $(date +%s.%N)" >> ' + TIMES))
    a >> b >> c
'''
TASKS = ("extract", "transform", "load")


@dataclass
class Figures:
    what: str
    from_start_ms: list[float] = field(default_factory=list)  # run/process start -> last task done, minus tasks
    between_ms: list[float] = field(default_factory=list)  # first task start -> last task done, minus tasks
    task_ms: list[float] = field(default_factory=list)
    note: str = ""


def write_dag(folder: Path, times: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bench_three_tasks.py"
    path.write_text(DAG_TEXT.format(times=str(times), dag_id=DAG_ID))
    return path


def _take_notes(times: Path) -> list[tuple[str, float, float]]:
    """The notes of one run, in order; the file is emptied for the next."""
    lines = times.read_text().split() if times.exists() else []
    times.write_text("")
    notes = [(lines[i], float(lines[i + 1]), float(lines[i + 2])) for i in range(0, len(lines), 3)]
    if [n[0] for n in notes] != list(TASKS):
        raise RuntimeError(f"expected one note per task in order {TASKS}, got {[n[0] for n in notes]}")
    return notes


def _account(fig: Figures, start: float, notes: list[tuple[str, float, float]]) -> None:
    own = sum(e - s for _, s, e in notes)
    last = max(e for _, _, e in notes)
    fig.from_start_ms.append((last - start - own) * 1000)
    fig.between_ms.append((last - notes[0][1] - own) * 1000)
    fig.task_ms.append(own * 1000)


def in_process(dag_file: Path, times: Path, runs: int) -> Figures:
    from rtstream.airflow.dag_run import DagRun
    from rtstream.airflow.dagbag import load

    dag = load(dag_file).dags[DAG_ID]
    fig = Figures("rtstream runner in process (DagRun.run)")
    times.write_text("")

    async def many() -> None:
        for i in range(runs + 1):
            at = datetime.now(UTC)
            start = time.time()
            result = await DagRun(dag, at).run()
            if result.run_state != "success":
                raise RuntimeError(f"in-process run {i}: {result.run_state}")
            notes = _take_notes(times)
            if i:  # the first run warms imports (jinja, the thread pool): left out
                _account(fig, start, notes)

    asyncio.run(many())
    return fig


def cli(dag_file: Path, times: Path, runs: int) -> Figures:
    fig = Figures("`rtstream dags test --json`, a process per run")
    times.write_text("")
    for i in range(runs):
        start = time.time()
        done = subprocess.run([sys.executable, "-m", "rtstream", "dags", "test", str(dag_file), "--json"],
                              capture_output=True, timeout=120)
        rows = [orjson.loads(line) for line in done.stdout.splitlines() if line.strip()]
        states = {r["task_id"]: r["state"] for r in rows if "task_id" in r}
        if done.returncode != 0 or rows[-1].get("run_state") != "success" or set(states.values()) != {"success"}:
            raise RuntimeError(f"rtstream dags test run {i}: exit {done.returncode}, {rows}: "
                               f"{done.stderr.decode()[-1000:]}")
        _account(fig, start, _take_notes(times))
    return fig


def airflow_env(home: Path, dags_folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db", "TZ": "UTC"})
    return env


def airflow(airflow_bin: Path, dag_file: Path, times: Path, runs: int) -> Figures:
    fig = Figures(f"`airflow dags test` ({_airflow_version(airflow_bin)}), a process per run")
    with tempfile.TemporaryDirectory(prefix="bench-airflow-") as tmp:
        home = Path(tmp)
        env = airflow_env(home, dag_file.parent)
        migrated = subprocess.run([str(airflow_bin), "db", "migrate"], env=env, cwd=home, capture_output=True,
                                  timeout=900)
        if migrated.returncode != 0:
            raise RuntimeError(f"airflow db migrate: {migrated.stderr.decode()[-2000:]}")
        times.write_text("")
        first = datetime(2026, 1, 1, tzinfo=UTC)
        for i in range(runs):
            at = (first + timedelta(days=i)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
            start = time.time()
            done = subprocess.run([str(airflow_bin), "dags", "test", DAG_ID, at], env=env, cwd=home,
                                  capture_output=True, timeout=600)
            out = (done.stdout + done.stderr).decode()
            if done.returncode != 0 or "state=success" not in out:
                raise RuntimeError(f"airflow dags test run {i}: exit {done.returncode}: {out[-2000:]}")
            _account(fig, start, _take_notes(times))
    return fig


def _airflow_version(airflow_bin: Path) -> str:
    done = subprocess.run([str(airflow_bin), "version"], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")})
    return f"Airflow {done.stdout.strip().splitlines()[-1]}" if done.returncode == 0 else "Airflow"


def bash_floor(runs: int = 50) -> float:
    """p50 ms of `bash -c` from Python, outside the command's own notes: the spawn every runner pays."""
    out = []
    for _ in range(runs):
        start = time.time()
        done = subprocess.run(["bash", "-c", 's=$(date +%s.%N); echo "$s $(date +%s.%N)"'], capture_output=True,
                              text=True, check=True)
        end = time.time()
        s, e = map(float, done.stdout.split())
        out.append((end - start - (e - s)) * 1000)
    return sorted(out)[len(out) // 2]


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, -(-len(ordered) * q // 100) - 1))]


def table(figs: list[Figures], floor_ms: float) -> list[str]:
    rows = ["| how | runs | overhead from start, ms p50 / p99 / max | overhead from the first task, ms "
            "p50 / p99 / max | tasks' own time, ms p50 |", "|---|---:|---|---|---:|"]
    for f in figs:
        a, b = f.from_start_ms, f.between_ms
        rows.append(f"| {f.what} | {len(a)} | {pct(a, 50):.1f} / {pct(a, 99):.1f} / {max(a):.1f} | "
                    f"{pct(b, 50):.1f} / {pct(b, 99):.1f} / {max(b):.1f} | {pct(f.task_ms, 50):.1f} |")
    rows.append(f"\nThe spawn of `bash -c` from Python, outside its commands (in every figure above, a floor "
                f"no runner avoids): {floor_ms:.1f} ms p50.")
    return rows


def three_task(runs: int, cli_runs: int, airflow_runs: int, airflow_bin: Path | None, work: Path) -> list[str]:
    times = work / "times.txt"
    dag_file = write_dag(work / "dags3", times)
    figs = [in_process(dag_file, times, runs)]
    print(f"  in process: {runs} runs", flush=True)
    figs.append(cli(dag_file, times, cli_runs))
    print(f"  rtstream dags test: {cli_runs} runs", flush=True)
    if airflow_bin is not None:
        figs.append(airflow(airflow_bin, dag_file, times, airflow_runs))
        print(f"  airflow dags test: {airflow_runs} runs", flush=True)
    return table(figs, bash_floor())
