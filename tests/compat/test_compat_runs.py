"""Scheduled runs, rtstream against Airflow itself: each recording in tests/compat/expected_runs/
(the real Airflow 2.10.5 scheduler over the catchup runs of a DAG of dags/runs/,
tests/compat/runs_oracle.py) is replayed under the real `rtstream run --dags`, and every run's state
and every task instance's state and tries must be Airflow's: depends_on_past and wait_for_downstream
hold a task instance (no state, its run stays running) exactly where Airflow's did; the callbacks of
dags/runs/callbacks_runs.py write the lines Airflow's worker and DAG processor had them write.

A task instance Airflow created and never ran (state None, try 0) is one rtstream's store has no row
for yet: both are compared as (None, 0). Needs no Airflow: the recordings are in the repository."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.compat.normalise import CALLBACKS_FILE, read_callbacks
from tests.compat.test_compat import callback_differences
from tests.support import Daemon, write_config

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RECORDINGS = sorted((HERE / "expected_runs").glob("*.json"))
SETTLE_S = 90  # the three runs of both DAGs, seven task instances each, on a loaded machine
STABLE_S = 3.0  # the picture must hold this long (the daemon looks at the previous run every 0.5 s)

# The tasks of dags/runs/ with depends_on_past (or wait_for_downstream) themselves.
WAITS_ON_THE_PAST = {"compat_past": ("held", "late", "skips_first"), "compat_wfd": ("guarded",)}

Picture = dict[str, dict[str, Any]]  # run_id -> {"state": ..., "tis": {(task_id, map_index): (state, tries)}}


def airflow_picture(doc: dict[str, Any]) -> Picture:
    return {run["run_id"]: {"state": run["state"],
                            "tis": {(t["task_id"], t["map_index"]): (t["state"], t["tries"])
                                    for t in run["task_instances"]}}
            for run in doc["runs"]}


def rtstream_picture(db: Path, dag_id: str, want: Picture) -> Picture:
    """The store's runs of `dag_id`; a task instance of Airflow's recording without a row is (None, 0)."""
    if not db.exists():
        return {}
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as con:
            runs = con.execute("SELECT run_id, state FROM dag_run WHERE dag_id = ?", (dag_id,)).fetchall()
            tis = con.execute("SELECT run_id, task_id, map_index, state, try_number FROM task_instance "
                              "WHERE dag_id = ?", (dag_id,)).fetchall()
    except sqlite3.OperationalError:  # not created yet, or locked for a moment
        return {}
    out: Picture = {}
    for run_id, state in runs:
        rows = {(t, m): (s, n) for r, t, m, s, n in tis if r == run_id}
        for key in want.get(run_id, {}).get("tis", {}):
            rows.setdefault(key, (None, 0))
        out[run_id] = {"state": state, "tis": rows}
    return out


def differences(want: Picture, got: Picture) -> list[str]:
    out = []
    for run_id in sorted(set(want) | set(got)):
        if run_id not in got or run_id not in want:
            out.append(f"run {run_id}: airflow {want.get(run_id, {}).get('state')}, "
                       f"rtstream {got.get(run_id, {}).get('state')}")
            continue
        if want[run_id]["state"] != got[run_id]["state"]:
            out.append(f"run {run_id} state: airflow {want[run_id]['state']}, rtstream {got[run_id]['state']}")
        a, b = want[run_id]["tis"], got[run_id]["tis"]
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                out.append(f"{run_id} {key[0]}[{key[1]}] (state, tries): airflow {a.get(key)}, rtstream {b.get(key)}")
    return out


def _file_cases() -> list[Any]:
    by_file: dict[str, list[Path]] = {}
    for path in RECORDINGS:
        by_file.setdefault(json.loads(path.read_text())["dag_file"], []).append(path)
    return [pytest.param(f, paths, id=Path(f).stem) for f, paths in sorted(by_file.items())]


@pytest.mark.parametrize("dag_file,recordings", _file_cases())
def test_rtstream_runs_consecutive_runs_as_airflow_did(dag_file: str, recordings: list[Path], tmp_path: Path) -> None:
    docs = [json.loads(p.read_text()) for p in recordings]
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(ROOT / dag_file, dags)
    config = write_config(tmp_path / "dags.toml", {"daemon": {"state_dir": "state", "shutdown_grace": "3s"}})
    db = tmp_path / "state" / "dag_runs.db"
    want = {d["dag_id"]: airflow_picture(d) for d in docs}

    def diffs() -> list[str]:
        return [f"{dag_id}: {line}" for dag_id, w in want.items()
                for line in differences(w, rtstream_picture(db, dag_id, w))]

    def waits_said(stderr: str) -> list[str]:
        """The task instances held by the previous run that have not said why they wait yet (the others
        without a state wait for their upstream, as in Airflow)."""
        return [f"{dag_id}.{task_id} ({run_id}): waits: " for dag_id, w in want.items() for run_id, run in w.items()
                for (task_id, _), (state, _tries) in run["tis"].items()
                if state is None and task_id in WAITS_ON_THE_PAST.get(dag_id, ())
                and f"{dag_id}.{task_id} ({run_id}): waits: " not in stderr]

    callbacks_file = tmp_path / CALLBACKS_FILE
    env = {"TZ": "UTC", "COMPAT_CALLBACKS_FILE": str(callbacks_file)}  # dags/runs/callbacks_runs.py writes there
    want_callbacks = {d["dag_id"]: d["callbacks"] for d in docs if "callbacks" in d}

    def callback_diffs() -> list[str]:
        got = read_callbacks(tmp_path) or []
        return [f"{dag_id}: {line}" for dag_id, lines in want_callbacks.items()
                for line in callback_differences(lines, [c for c in got if c.get("dag_id") == dag_id])]

    with Daemon(config, tmp_path, "--dags", str(dags), env=env) as daemon:
        # Airflow's picture, every hold said, and still so STABLE_S later: a run whose task instances
        # have not started yet looks held for a moment
        deadline, since, last, stable = time.monotonic() + SETTLE_S, None, ["not started"], False
        while time.monotonic() < deadline:
            last = diffs() + waits_said(daemon.stderr) + callback_diffs()
            if last:
                since = None
            elif since is None:
                since = time.monotonic()
            elif time.monotonic() - since >= STABLE_S:
                stable = True
                break
            time.sleep(0.25)
        assert stable, \
            "rtstream differs from Airflow:\n  " + "\n  ".join(last) + "\n" + daemon.stderr[-3000:]
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    assert diffs() == [], "a clean stop changed what the store says"
    assert callback_diffs() == [], "a clean stop called a callback"


def test_the_run_recordings_are_whole() -> None:
    """Every DAG file of dags/runs/ has its recordings, each with its scheduled runs in logical-date order."""
    files = {json.loads(p.read_text())["dag_file"] for p in RECORDINGS}
    assert files == {str(p.relative_to(ROOT)) for p in (HERE / "dags" / "runs").glob("*.py")}
    for path in RECORDINGS:
        doc = json.loads(path.read_text())
        assert [r["run_id"] for r in doc["runs"]] == sorted(r["run_id"] for r in doc["runs"]), path
        assert all(r["run_type"] == "scheduled" for r in doc["runs"]), path
