"""Records consecutive scheduled runs under the real Airflow scheduler: what `depends_on_past` and
`wait_for_downstream` do across runs, which `airflow dags test` (one manual run) cannot show.

    python3.11 -m tests.compat.runs_oracle [--check]

For the DAG files of dags/runs/: a throwaway AIRFLOW_HOME (SQLite, `airflow db migrate`), then the
real `airflow scheduler` (SequentialExecutor, DAGs unpaused at creation) in an empty cwd, with TZ=UTC,
until nothing changes in the metadata DB for SETTLE_S seconds (a task instance held by
depends_on_past keeps no state and its run stays running: the scheduler never ends such a run, so
"settled" is the end), then the scheduler is stopped and every run and task instance is read from the
metadata DB (run state; per task instance state and try_number). Writes expected_runs/<dag_id>.json;
--check compares a fresh recording with it instead. test_compat_runs.py replays each under the real
`rtstream run --dags`.

Standard library only, like oracle.py (the metadata DB is read with sqlite3).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.compat.normalise import CALLBACKS_FILE, read_callbacks
from tests.compat.oracle import HERE, LOGS, ROOT, airflow_env, ensure_venv, load_corpus, run_logged

FOLDER = HERE / "dags" / "runs"
EXPECTED = HERE / "expected_runs"
SETTLE_S = 30  # the scheduler loops every second; a task file is parsed again every 5 s
TIMEOUT_S = 900
TRANSIENT = ("scheduled", "queued", "running", "up_for_retry", "up_for_reschedule", "restarting", "deferred")


def read_runs(db: Path) -> dict[str, list[dict[str, Any]]]:
    """dag_id -> its runs by logical date, each with its task instances sorted by task and map index."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as con:
        runs = con.execute("SELECT dag_id, run_id, execution_date, run_type, state FROM dag_run "
                           "ORDER BY dag_id, execution_date").fetchall()
        tis = con.execute("SELECT dag_id, run_id, task_id, map_index, state, try_number FROM task_instance "
                          "ORDER BY dag_id, run_id, task_id, map_index").fetchall()
    out: dict[str, list[dict[str, Any]]] = {}
    for dag_id, run_id, _when, run_type, state in runs:
        out.setdefault(dag_id, []).append({
            "run_id": run_id, "run_type": run_type, "state": state,
            "task_instances": [{"task_id": t, "map_index": m, "state": s, "tries": n}
                               for d, r, t, m, s, n in tis if d == dag_id and r == run_id]})
    return out


def settled(runs: dict[str, list[dict[str, Any]]], dag_ids: list[str]) -> bool:
    return all(runs.get(d) for d in dag_ids) and not any(
        ti["state"] in TRANSIENT for d in dag_ids for run in runs[d] for ti in run["task_instances"])


def record_folder(venv: Path, dag_ids: list[str]
                ) -> tuple[dict[str, list[dict[str, Any]]], float, list[dict[str, Any]] | None]:
    home = Path(tempfile.mkdtemp(prefix="airflow-runs-home-"))
    workdir = Path(tempfile.mkdtemp(prefix="airflow-runs-cwd-"))
    env = {**airflow_env(home, FOLDER), "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
           "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5", "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
           "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1", "AIRFLOW__SCHEDULER__PARSING_PROCESSES": "1",
           "COMPAT_CALLBACKS_FILE": str(workdir / CALLBACKS_FILE),  # dags/runs/callbacks_runs.py writes there
           # the SequentialExecutor runs each task as `airflow tasks run ...` found on PATH
           "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    try:
        if run_logged([str(venv / "bin" / "airflow"), "db", "migrate"], env, home, LOGS / "runs-db-migrate.log",
                      600) != 0:
            sys.exit(f"runs_oracle: airflow db migrate failed, see {LOGS / 'runs-db-migrate.log'}")
        started = time.monotonic()
        with open(LOGS / "runs__scheduler.log", "w") as log:
            proc = subprocess.Popen([str(venv / "bin" / "airflow"), "scheduler"], env=env, cwd=workdir,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                last, since = None, time.monotonic()
                while time.monotonic() - started < TIMEOUT_S:
                    time.sleep(1)
                    try:
                        now = read_runs(home / "airflow.db")
                    except sqlite3.OperationalError:  # locked, or not migrated yet
                        continue
                    if now != last:
                        last, since = now, time.monotonic()
                    elif settled(now, dag_ids) and time.monotonic() - since >= SETTLE_S:
                        return now, since - started, read_callbacks(workdir)
                    if proc.poll() is not None:
                        sys.exit(f"runs_oracle: the scheduler ended (exit {proc.returncode}), see {log.name}")
                sys.exit(f"runs_oracle: {FOLDER} did not settle in {TIMEOUT_S}s: {last}")
            finally:  # the scheduler and its task and log-serving children
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the recording, write nothing")
    opts = ap.parse_args(argv)
    airflow = next(a for a in load_corpus()["airflow"] if a["version"].startswith("2."))
    venv = ROOT / airflow["venv"]
    ensure_venv(venv, airflow["version"], ROOT / airflow["constraints"])
    LOGS.mkdir(exist_ok=True)
    differs = 0
    files: dict[str, Path] = {}  # dag_id -> its file
    for path in sorted(FOLDER.glob("*.py")):
        listed = json.loads(subprocess.run([str(venv / "bin" / "python"), str(HERE / "airflow_reader.py"), "list",
                                            str(path)], env=airflow_env(Path(tempfile.gettempdir()), FOLDER),
                                           capture_output=True, text=True, check=True, timeout=300).stdout)
        files.update((dag_id, path) for dag_id in listed["dag_ids"])
    # one scheduler for the folder, as a deployment has it (it parses every file of its DAG folder)
    runs, seconds, callbacks = record_folder(venv, sorted(files))
    for dag_id, path in sorted(files.items()):
        doc = {"airflow_version": airflow["version"], "dag_file": str(path.relative_to(ROOT)), "dag_id": dag_id,
               "command": "airflow scheduler (SequentialExecutor, SQLite, DAGs unpaused at creation), stopped "
                          f"once the metadata DB had not changed for {SETTLE_S}s",
               "runs": runs[dag_id]}
        mine = [c for c in callbacks or [] if c.get("dag_id") == dag_id]
        if mine:  # the lines its callbacks wrote (normalise.read_callbacks' order)
            doc["callbacks"] = mine
        target = EXPECTED / f"{dag_id}.json"
        print(f"runs_oracle: {dag_id}: {[r['state'] for r in runs[dag_id]]} (settled after {seconds:.0f}s)")
        if opts.check:
            if not target.exists() or json.loads(target.read_text()) != doc:
                differs += 1
                print(f"runs_oracle: {dag_id} DIFFERS from the recording")
        else:
            EXPECTED.mkdir(exist_ok=True)
            target.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return 1 if differs else 0


if __name__ == "__main__":
    sys.exit(main())
