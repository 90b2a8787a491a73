"""The compatibility oracle: runs every corpus DAG under the real Airflow and records what it did.

    python3.11 -m tests.compat.oracle [--airflow VERSION ...] [--only DAG_ID ...] [--check] [--keep-home]

1. For each Airflow of corpus.toml, makes its venv (.venv-airflow, .venv-airflow3 at the checkout's
   root) with that apache-airflow pinned by its constraints file, unless it is there already.
2. Initialises a throwaway AIRFLOW_HOME (SQLite, `airflow db migrate`) in a temporary directory.
3. For each DAG of dags/<set>/*.py (found by a DagBag, as `airflow dags test -S FILE` loads it), runs
   `airflow dags test -S FILE DAG_ID LOGICAL_DATE` in an empty temporary cwd, then reads the run back
   from the metadata DB (airflow_reader.py, inside the Airflow venv): per task instance its state,
   try_number, map_index and every XCom.
4. Writes expected/<set>/<dag_id>.json: the records `rtstream dags test --json` prints, sorted, with
   run-dependent values normalised (normalise.py) and the run's provenance. With --check it writes
   nothing and reports how the fresh run differs from the recording (exit 1 when it does).

Standard library only: it runs before any venv exists. Logs of each run go to .compat-logs/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from tests.compat.normalise import (
    CALLBACKS_RULE,
    RULES,
    mask_volatile,
    read_callbacks,
    replace_paths,
    sort_bookkeeping,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LOGS = ROOT / ".compat-logs"


def load_corpus() -> dict[str, Any]:
    with open(HERE / "corpus.toml", "rb") as fh:
        return tomllib.load(fh)


def ensure_venv(venv: Path, version: str, constraints: Path) -> None:
    """The real Airflow in its own venv: never rtstream's, never `make test`'s."""
    if (venv / "bin" / "airflow").exists():
        done = subprocess.run([str(venv / "bin" / "python"), "-c", "import airflow; print(airflow.__version__)"],
                              capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip() == version:
            return
        shutil.rmtree(venv)
    if sys.version_info[:2] not in ((3, 10), (3, 11), (3, 12)):
        sys.exit(f"apache-airflow {version} is pinned for Python 3.10-3.12; run the oracle with python3.11")
    print(f"oracle: installing apache-airflow=={version} into {venv} (several minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = str(venv / "bin" / "pip")
    subprocess.run([pip, "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([pip, "install", "-q", f"apache-airflow=={version}", "-c", str(constraints)], check=True)


def airflow_env(home: Path, dags_folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "TZ": "UTC",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


def run_logged(cmd: list[str], env: dict[str, str], cwd: Path, log: Path, timeout: float) -> int | None:
    """Run with stdout+stderr to the log; None when it ran past the timeout (its whole process group
    is ended: `dags test` may have started task subprocesses)."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None


def reader(venv: Path, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([str(venv / "bin" / "python"), str(HERE / "airflow_reader.py"), *args], env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"airflow_reader {args}: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def plan(corpus: dict[str, Any], airflow: dict[str, Any], venv: Path, env_for,
         only: set[str]) -> tuple[list[tuple[str, Path, str]], list[tuple[str, Path, str]]]:
    """Every (set, file, dag_id) found, and those to run in run order: sorted, a DAG with `after`
    right after the one it names."""
    found: list[tuple[str, Path, str]] = []
    for set_name in airflow["sets"]:
        folder = HERE / "dags" / set_name
        for path in sorted(folder.glob("*.py")):
            listed = reader(venv, ["list", str(path)], env_for(folder))
            for err_file, err in listed["import_errors"].items():
                print(f"oracle: {set_name}/{Path(err_file).name} does not load under Airflow: {err}")
            found += [(set_name, path, dag_id) for dag_id in listed["dag_ids"]]
    rules = corpus.get("dags", {})
    order = [f for f in found if "after" not in rules.get(f[2], {})]
    for f in found:
        if "after" in rules.get(f[2], {}):
            at = next(i for i, g in enumerate(order) if g[2] == rules[f[2]]["after"])
            order.insert(at + 1, f)
    # A DAG named by --only brings the DAG it runs after (its sensor waits on that one's run).
    wanted = set(only) | {rules[d]["after"] for d in only if "after" in rules.get(d, {})}
    return found, [f for f in order if not only or f[2] in wanted]


def record(corpus: dict[str, Any], airflow: dict[str, Any], command: list[str], set_name: str, path: Path, dag_id: str, home: Path,
           rc: int | None, seconds: float, read: dict[str, Any], workdir: Path) -> dict[str, Any]:
    rules = corpus.get("dags", {}).get(dag_id, {})
    volatile = rules.get("volatile", {})
    paths = {str(home): "<AIRFLOW_HOME>", str(workdir): "<WORKDIR>", str(ROOT): "<REPO>"}
    records = replace_paths(sort_bookkeeping(mask_volatile(read["task_instances"], volatile)), paths)
    records.append({"dag_id": dag_id, "run_state": read["run_state"]})
    doc = {
        "airflow_version": airflow["version"],
        "python": platform.python_version(),
        "dag_file": str(path.relative_to(ROOT)),
        "dag_id": dag_id,
        "logical_date": corpus["logical_date"],
        "command": " ".join(["airflow", *command]).replace(str(ROOT) + "/", ""),
        "exit_code": rc,
        "seconds": round(seconds, 1),  # informative only: not compared, may differ between recordings
        "cwd": "an empty temporary directory (<WORKDIR>)",
        "normalised": RULES,
        "wall_clock": rules.get("wall_clock", {}),
        "volatile": volatile,
        "records": records,
    }
    if read.get("callbacks") is not None:  # a DAG whose callbacks wrote callbacks.jsonl
        doc["callbacks"] = replace_paths(read["callbacks"], paths)
        doc["normalised"] = {**RULES, "callbacks": CALLBACKS_RULE}
    return doc


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("seconds", "python")}


def run_airflow(corpus: dict[str, Any], airflow: dict[str, Any], only: set[str], check: bool,
                keep_home: bool, outcomes: dict[str, str], index_only: bool = False) -> int:
    """Every DAG of this Airflow's sets, in one throwaway AIRFLOW_HOME; the number that differ from
    the recording (with check)."""
    venv = ROOT / airflow["venv"]
    ensure_venv(venv, airflow["version"], ROOT / airflow["constraints"])
    home = Path(tempfile.mkdtemp(prefix=f"airflow-{airflow['version']}-home-"))
    env_for = lambda folder: airflow_env(home, folder)  # noqa: E731
    tag = airflow["version"]
    migrated = run_logged([str(venv / "bin" / "airflow"), "db", "migrate"], env_for(HERE / "dags"), home,
                          LOGS / f"db-migrate-{tag}.log", 600)
    if migrated != 0:
        sys.exit(f"oracle: airflow db migrate failed, see {LOGS / f'db-migrate-{tag}.log'}")
    # As a deployment's DAG processor would have: every DAG of the sets serialised into the metadata
    # DB, which cross-DAG lookups read (ExternalTaskSensor on a task group, TriggerDagRunOperator).
    if airflow.get("serialize_dags"):
        for set_name in airflow["sets"]:
            folder = HERE / "dags" / set_name
            done = reader(venv, ["serialize", str(folder)], env_for(folder))
            for err_file, err in done["import_errors"].items():
                print(f"oracle: {set_name}/{Path(err_file).name} not serialised: {err}", flush=True)
    rules = corpus.get("dags", {})
    differs = 0
    found, to_run = plan(corpus, airflow, venv, env_for, only)
    if index_only:
        to_run = []
    try:
        for set_name, path, dag_id in to_run:
            name = f"{set_name}/{dag_id}"
            if rules.get(dag_id, {}).get("run") is False:
                outcomes[name] = "not run: " + rules[dag_id]["reason"]
                continue
            workdir = Path(tempfile.mkdtemp(prefix="dag-cwd-"))
            command = [part.format(file=path, dag_id=dag_id, logical_date=corpus["logical_date"])
                       for part in airflow["dags_test"]]
            started = time.monotonic()
            rc = run_logged([str(venv / "bin" / "airflow"), *command], env_for(path.parent), workdir,
                            LOGS / f"{set_name}__{dag_id}.log", rules.get(dag_id, {}).get("timeout_s", corpus["timeout_s"]))
            seconds = time.monotonic() - started
            read = reader(venv, ["read", dag_id, corpus["logical_date"]], env_for(path.parent))
            read["callbacks"] = read_callbacks(workdir)
            shutil.rmtree(workdir, ignore_errors=True)
            if rc is None or read["run_state"] not in ("success", "failed"):
                outcomes[name] = f"no result: exit {rc}, run state {read['run_state']} after {seconds:.0f}s"
                print(f"oracle: {name}: {outcomes[name]}", flush=True)
                continue
            doc = record(corpus, airflow, command, set_name, path, dag_id, home, rc, seconds, read, workdir)
            states: dict[str, int] = {}
            for r in doc["records"][:-1]:
                states[r["state"]] = states.get(r["state"], 0) + 1
            outcomes[name] = f"{read['run_state']} {dict(sorted(states.items()))} in {seconds:.0f}s"
            target = HERE / "expected" / set_name / f"{dag_id}.json"
            if check:
                old = json.loads(target.read_text()) if target.exists() else None
                if old is None or comparable(old) != comparable(doc):
                    differs += 1
                    outcomes[name] += "  DIFFERS from the recording"
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
            print(f"oracle: {name}: {outcomes[name]}", flush=True)
    finally:
        if not keep_home:
            shutil.rmtree(home, ignore_errors=True)
    if not check:
        write_indexes(corpus, airflow, found, outcomes)
    return differs


def write_indexes(corpus: dict[str, Any], airflow: dict[str, Any], found: list[tuple[str, Path, str]],
                  outcomes: dict[str, str]) -> None:
    """expected/<set>/INDEX.json: every corpus file with the DAGs Airflow finds in it, and each DAG's
    outcome: its recording's run state and state counts, `not run: reason`, or why there is no result
    (from this run, else from the index before)."""
    rules = corpus.get("dags", {})
    for set_name in airflow["sets"]:
        target = HERE / "expected" / set_name / "INDEX.json"
        old = json.loads(target.read_text()) if target.exists() else {}
        files: dict[str, list[str]] = {}
        for s, path, dag_id in found:
            if s == set_name:
                files.setdefault(path.name, []).append(dag_id)
        summary = {}
        for dag_id in sorted(d for ids in files.values() for d in ids):
            recording = HERE / "expected" / set_name / f"{dag_id}.json"
            if rules.get(dag_id, {}).get("run") is False:
                summary[dag_id] = "not run: " + rules[dag_id]["reason"]
            elif recording.exists():
                records = json.loads(recording.read_text())["records"]
                states: dict[str, int] = {}
                for r in records[:-1]:
                    states[r["state"]] = states.get(r["state"], 0) + 1
                summary[dag_id] = f"{records[-1]['run_state']} {dict(sorted(states.items()))}"
            else:
                summary[dag_id] = outcomes.get(f"{set_name}/{dag_id}") or old.get("outcomes", {}).get(dag_id, "no result")
        index = {"airflow_version": airflow["version"], "files": files, "outcomes": summary}
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=[], help="DAG ids to run (default: all)")
    ap.add_argument("--airflow", nargs="*", default=[], help="Airflow versions of corpus.toml to run (default: all)")
    ap.add_argument("--check", action="store_true", help="compare with the recording, write nothing")
    ap.add_argument("--keep-home", action="store_true", help="keep the AIRFLOW_HOME for a look afterwards")
    ap.add_argument("--index-only", action="store_true", help="run nothing: rewrite expected/<set>/INDEX.json")
    opts = ap.parse_args(argv)
    corpus = load_corpus()
    LOGS.mkdir(exist_ok=True)
    outcomes: dict[str, str] = {}
    differs = 0
    for airflow in corpus["airflow"]:
        if not opts.airflow or airflow["version"] in opts.airflow:
            differs += run_airflow(corpus, airflow, set(opts.only), opts.check, opts.keep_home, outcomes,
                                   opts.index_only)
    (LOGS / "outcomes.json").write_text(json.dumps(outcomes, indent=1, sort_keys=True) + "\n")
    ran = sum(1 for v in outcomes.values() if v.startswith(("success", "failed")))
    print(f"oracle: {len(outcomes)} DAGs, {ran} with a result; logs in {LOGS}"
          + (f"; {differs} differ from the recording" if opts.check else ""))
    return 1 if differs else 0


if __name__ == "__main__":
    sys.exit(main())
