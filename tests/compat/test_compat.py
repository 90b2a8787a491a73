"""rtstream against Airflow itself: every recording in tests/compat/expected/ (made by the real
apache-airflow through tests/compat/oracle.py, `make compat`) is replayed through the real
`rtstream dags test FILE --dag ID --json --at LOGICAL_DATE`, and per task instance the state, the tries
and the XCom values must be Airflow's. Needs no Airflow: the recordings are in the repository.

Until `rtstream dags` exists, the replay tests skip (the check of the recordings themselves runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.compat.normalise import mask_volatile, read_callbacks, replace_paths

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXPECTED = sorted(p for p in (HERE / "expected").glob("*/*.json") if p.name != "INDEX.json")
CORPUS = tomllib.loads((HERE / "corpus.toml").read_text())
VERSION_OF_SET = {set_name: af["version"] for af in CORPUS["airflow"] for set_name in af["sets"]}

# XCom keys Airflow writes for its own bookkeeping, not values a task produced: rtstream need not keep
# them under the same key (the branch decision is compared through the followed tasks' states).
INTERNAL_XCOM_KEYS = {
    "skipmixin_key": "BranchMixIn/ShortCircuit record of the branches followed",
    "pipeline_inlets": "Airflow 2's lineage bookkeeping (airflow.lineage) for a task with inlets",
    "pipeline_outlets": "Airflow 2's lineage bookkeeping (airflow.lineage) for a task with outlets",
}

# Where rtstream differs from Airflow on purpose: {(dag_id, task_id or "*", what): reason}, `what` one
# of "state", "tries", "xcom", "run_state", "task_set", "callbacks". Each entry says why and docs/AIRFLOW.md explains it.
_ASSET_ACTIVATION = (
    "Airflow 3's `dags test -f` stores the whole DAG folder first: example_outlet_event_extra.py's Asset(name='test-asset', uri='s3://output/1.txt') took that URI, so this file's Asset('s3://output/1.txt') is inactive and its task fails (AirflowInactiveAssetInInletOrOutletException). `rtstream dags test FILE` loads FILE only, where nothing conflicts; given the folder it refuses the DAG and names both assets (which one Airflow activates depends on its parse order). docs/AIRFLOW.md, 'Airflow 2 or 3'.")
ALLOWED_DIFFERENCES: dict[tuple[str, str, str], str] = {
    ("read_asset_event", "read_asset_event", "state"): _ASSET_ACTIVATION,
    ("read_asset_event", "*", "run_state"): _ASSET_ACTIVATION,
}


@cache
def rtstream_has_dags() -> bool:
    done = subprocess.run([sys.executable, "-m", "rtstream", "dags", "--help"], capture_output=True, timeout=60)
    return done.returncode == 0


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _key(rec: dict[str, Any]) -> tuple[str, int]:
    return rec["task_id"], rec["map_index"]


def _allowed(dag_id: str, task_id: str, what: str) -> bool:
    return (dag_id, task_id, what) in ALLOWED_DIFFERENCES or (dag_id, "*", what) in ALLOWED_DIFFERENCES


def _user_xcom(xcom: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in xcom.items() if k not in INTERNAL_XCOM_KEYS}


def run_rtstream(doc: dict[str, Any], tmp: Path) -> tuple[int, list[dict[str, Any]], str]:
    """`rtstream dags test` as a user runs it, in an empty cwd with an AIRFLOW_HOME of its own (some
    example DAGs write under $AIRFLOW_HOME), TZ=UTC like the recording. The lines its callbacks wrote
    (callbacks.jsonl in that cwd), if any, come last as {"callbacks": [...]}."""
    workdir, home = tmp / "cwd", tmp / "home"
    workdir.mkdir()
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({"AIRFLOW_HOME": str(home), "TZ": "UTC"})
    done = subprocess.run(
        [sys.executable, "-m", "rtstream", "dags", "test", str(ROOT / doc["dag_file"]), "--dag", doc["dag_id"],
         "--json", "--at", doc["logical_date"]],
        capture_output=True, text=True, cwd=workdir, env=env,
        timeout=CORPUS.get("dags", {}).get(doc["dag_id"], {}).get("timeout_s", CORPUS["timeout_s"]))
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    paths = {str(home): "<AIRFLOW_HOME>", str(workdir): "<WORKDIR>", str(ROOT): "<REPO>"}
    records = replace_paths(mask_volatile(lines, doc["volatile"]), paths)
    if (callbacks := read_callbacks(workdir)) is not None:
        records.append({"callbacks": replace_paths(callbacks, paths)})
    return done.returncode, records, done.stderr


def differences(doc: dict[str, Any], got: list[dict[str, Any]]) -> list[str]:
    """Every way rtstream's run differs from Airflow's, less the allowed ones and the wall-clock tasks."""
    dag_id = doc["dag_id"]
    want_tis = {_key(r): r for r in doc["records"] if "task_id" in r}
    got_tis = {_key(r): r for r in got if "task_id" in r}
    out = []
    if set(want_tis) != set(got_tis) and not _allowed(dag_id, "*", "task_set"):
        out.append(f"task instances: missing {sorted(set(want_tis) - set(got_tis))}, "
                   f"extra {sorted(set(got_tis) - set(want_tis))}")
    for key in sorted(set(want_tis) & set(got_tis)):
        want, have = want_tis[key], got_tis[key]
        if key[0] in doc["wall_clock"]:
            continue
        for what, a, b in (("state", want["state"], have["state"]), ("tries", want["tries"], have["tries"]),
                           ("xcom", _user_xcom(want["xcom"]), _user_xcom(have.get("xcom", {})))):
            if a != b and not _allowed(dag_id, key[0], what):
                out.append(f"{key[0]}[{key[1]}] {what}: airflow {a!r}, rtstream {b!r}")
    want_run = next(r["run_state"] for r in doc["records"] if "run_state" in r)
    got_run = [r["run_state"] for r in got if "run_state" in r and r.get("dag_id") == dag_id]
    if got_run != [want_run] and not _allowed(dag_id, "*", "run_state"):
        out.append(f"run_state: airflow {want_run!r}, rtstream {got_run!r}")
    if "callbacks" in doc and not _allowed(dag_id, "*", "callbacks"):
        out += callback_differences(doc["callbacks"], next((r["callbacks"] for r in got if "callbacks" in r), []))
    return out


def callback_differences(want: list[dict[str, Any]], got: list[dict[str, Any]]) -> list[str]:
    """The callback lines, one task instance (or the DAG) at a time, each in its order (a recording
    made with callbacks: dags/constructs/callbacks.py)."""
    def by_owner(lines: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for line in lines:
            owner = "DAG" if "reason" in line else f"{line.get('task_id')}[{line.get('map_index', -1)}]"
            owner = f"{line['run_id']} {owner}" if "run_id" in line else owner  # consecutive runs
            out.setdefault(owner, []).append(line)
        return out

    # Airflow's `dags test` runs a try without setting its task instance `running` (dag.test's _run_task
    # calls _run_raw_task directly, which "only after another function changes the state to running"):
    # the try, on_execute_callback included, sees `scheduled`. A deployment's worker sets `running`
    # first, and so does rtstream, under `dags test` too (docs/AIRFLOW.md, "Callbacks").
    want = [{**c, "state": "running"} if c.get("state") == "scheduled" else c for c in want]
    a, b = by_owner(want), by_owner(got)
    return [f"callbacks of {owner}: airflow {a.get(owner, [])!r}, rtstream {b.get(owner, [])!r}"
            for owner in sorted(set(a) | set(b)) if a.get(owner) != b.get(owner)]


# Runs where rtstream does not match Airflow yet: {"set/dag_id": why}. Not deliberate differences (those
# are ALLOWED_DIFFERENCES) but gaps still to close; each is an expected failure, strictly: a run that
# starts to match fails the suite until its line here is taken out, so the list only ever shrinks.
NOT_YET: dict[str, str] = tomllib.loads((HERE / "not_yet.toml").read_text()).get("runs", {})


def _case(path: Path) -> Any:
    name = f"{path.parent.name}/{path.stem}"
    why = NOT_YET.get(name)
    marks = [pytest.mark.xfail(strict=True, reason=f"not yet as Airflow: {why}")] if why else []
    return pytest.param(path, id=name, marks=marks)


def cases(major: str) -> list[Any]:
    """The recorded runs of Airflow `major`.x (the constructs' are 2.x): tests/compat/test_compat_airflow3.py
    replays the 3.x ones, so that the suite's workers share the corpus (a file goes to one worker)."""
    return [_case(p) for p in EXPECTED if VERSION_OF_SET[p.parent.name].startswith(f"{major}.")]


@pytest.mark.skipif(not rtstream_has_dags(), reason="`rtstream dags` is not there yet (rtstream dags --help fails)")
@pytest.mark.parametrize("path", cases("2"))
def test_rtstream_runs_the_dag_as_airflow_did(path: Path, tmp_path: Path) -> None:
    replay_and_compare(path, tmp_path)


def replay_and_compare(path: Path, tmp_path: Path) -> None:
    doc = _load(path)
    rc, got, stderr = run_rtstream(doc, tmp_path)
    assert rc in (0, 1), f"exit {rc}: {stderr[-3000:]}"
    diffs = differences(doc, got)
    assert not diffs, f"{doc['dag_id']} differs from Airflow {doc['airflow_version']}:\n  " + "\n  ".join(diffs)
    # Exit 0 exactly when the run succeeded, as the CLI promises (rtstream's own run, where its state
    # differs from Airflow's on purpose).
    run_state = doc["records"][-1]["run_state"]
    if _allowed(doc["dag_id"], "*", "run_state"):
        run_state = next((r["run_state"] for r in got if "run_state" in r), run_state)
    assert rc == (0 if run_state == "success" else 1), stderr[-2000:]


def test_the_recordings_are_whole_and_stable() -> None:
    """Runs without Airflow and without `rtstream dags`: every corpus file has a recording (or a reason
    in corpus.toml), each recording is Airflow's pinned version, sorted, ends with the run's state."""
    assert EXPECTED, "no recordings: run make compat"
    for path in EXPECTED:
        doc = _load(path)
        assert doc["airflow_version"] == VERSION_OF_SET[path.parent.name], path
        assert (ROOT / doc["dag_file"]).exists(), path
        assert doc["logical_date"] == CORPUS["logical_date"], path
        tis, last = doc["records"][:-1], doc["records"][-1]
        assert last == {"dag_id": doc["dag_id"], "run_state": last["run_state"]}, path
        assert last["run_state"] in ("success", "failed"), path
        assert [_key(r) for r in tis] == sorted(_key(r) for r in tis), path
        for r in tis:
            assert set(r) == {"dag_id", "task_id", "map_index", "state", "tries", "xcom"}, (path, r)
    not_run = {d for d, rules in CORPUS.get("dags", {}).items() if rules.get("run") is False}
    for set_name in VERSION_OF_SET:
        index = _load(HERE / "expected" / set_name / "INDEX.json")
        on_disk = sorted(p.name for p in (HERE / "dags" / set_name).glob("*.py"))
        assert sorted(index["files"]) == on_disk, f"{set_name}: INDEX.json is stale, run make compat"
        for dag_id in (d for ids in index["files"].values() for d in ids):
            recorded = (HERE / "expected" / set_name / f"{dag_id}.json").exists()
            assert recorded or dag_id in not_run, f"{set_name}/{dag_id} has no recording and no reason in corpus.toml"
            assert not (recorded and dag_id in not_run), f"{set_name}/{dag_id} is recorded but marked run = false"


def test_every_gap_names_a_recorded_run() -> None:
    recorded = {f"{p.parent.name}/{p.stem}" for p in EXPECTED}
    assert set(NOT_YET) <= recorded, sorted(set(NOT_YET) - recorded)


def test_every_allowed_difference_names_a_recorded_dag() -> None:
    recorded = {_load(p)["dag_id"] for p in EXPECTED}
    for (dag_id, _task, what), reason in ALLOWED_DIFFERENCES.items():
        assert dag_id in recorded and reason and what in ("state", "tries", "xcom", "run_state", "task_set", "callbacks")


def test_every_corpus_rule_names_a_dag_of_the_corpus() -> None:
    """A typo in corpus.toml would silently compare a wall-clock task: each rule must name a recorded
    DAG (or one not run, with its reason) and recorded tasks."""
    tasks_of: dict[str, set[str]] = {}
    for p in EXPECTED:
        doc = _load(p)
        tasks_of.setdefault(doc["dag_id"], set()).update(r["task_id"] for r in doc["records"] if "task_id" in r)
    for dag_id, rules in CORPUS.get("dags", {}).items():
        if rules.get("run") is False:
            assert rules.get("reason") and dag_id not in tasks_of, dag_id
            continue
        assert dag_id in tasks_of, f"corpus.toml names {dag_id}, which has no recording"
        tasks = tasks_of[dag_id]
        for kind in ("wall_clock", "volatile"):
            assert set(rules.get(kind, {})) <= tasks, (dag_id, kind, set(rules.get(kind, {})) - tasks)


def test_the_comparison_names_each_difference() -> None:
    """The comparison itself, on a recording against edited copies of it (no rtstream needed)."""
    doc = _load(HERE / "expected" / "constructs" / "compat_retries.json")
    same = [dict(r) for r in doc["records"]]
    assert differences(doc, same) == []
    edited = [dict(r) for r in doc["records"]]
    flaky = next(r for r in edited if r.get("task_id") == "flaky")
    flaky.update(tries=1, xcom={"return_value": "succeeded on try 1", "skipmixin_key": {"x": 1}})
    edited = [r for r in edited if r.get("task_id") != "after_always"]
    edited[-1] = {"dag_id": doc["dag_id"], "run_state": "success"}
    diffs = differences(doc, edited)
    assert diffs[0] == "task instances: missing [('after_always', -1)], extra []"
    assert "flaky[-1] tries: airflow 3, rtstream 1" in diffs
    assert "flaky[-1] xcom: airflow {'return_value': 'succeeded on try 3'}, " \
           "rtstream {'return_value': 'succeeded on try 1'}" in diffs  # skipmixin_key is Airflow's bookkeeping
    assert diffs[-1] == "run_state: airflow 'failed', rtstream ['success']"
    assert len(diffs) == 4
    # A wall-clock task's state and values are not compared.
    wall = {**doc, "wall_clock": {"flaky": "test"}}
    assert len(differences(wall, edited)) == 2
