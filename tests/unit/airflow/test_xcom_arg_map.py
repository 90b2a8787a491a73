"""XComArg `.map()`, `.zip()` (with and without fillvalue) and `.concat()`, expanded and as a plain
argument, a map function that skips or fails one instance, `expand_kwargs` over a map: the run of
tests/fixtures/dags_airflow3/map_zip.py must be what Airflow 3.3.2 gave for it (`airflow dags test -f`,
read back with tests/compat/airflow_reader.py; recorded below on this machine). States, tries and
XComs, a tuple shown as Airflow 3's serde stores it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "dags_airflow3" / "map_zip.py"
AIRFLOW_3_3_2 = [
    ('echo', 0, 'success', 1, {'return_value': 'a'}),
    ('echo', 1, 'success', 1, {'return_value': 'b'}),
    ('failing', 0, 'success', 1, {'return_value': 10}),
    ('failing', 1, 'success', 1, {'return_value': 20}),
    ('failing', 2, 'failed', 1, {}),
    ('joined', 0, 'success', 1, {'return_value': 1}),
    ('joined', 1, 'success', 1, {'return_value': 2}),
    ('joined', 2, 'success', 1, {'return_value': 3}),
    ('joined', 3, 'success', 1, {'return_value': 'a'}),
    ('joined', 4, 'success', 1, {'return_value': 'b'}),
    ('letters', -1, 'success', 1, {'return_value': ['a', 'b']}),
    ('nums', -1, 'success', 1, {'return_value': [1, 2, 3]}),
    ('plain_arg', -1, 'success', 1, {'return_value': 60}),
    ('skipping', 0, 'success', 1, {'return_value': 1}),
    ('skipping', 1, 'skipped', 1, {}),
    ('skipping', 2, 'success', 1, {'return_value': 3}),
    ('sum_tens', -1, 'success', 1, {'return_value': 60}),
    ('tens', 0, 'success', 1, {'return_value': 10}),
    ('tens', 1, 'success', 1, {'return_value': 20}),
    ('tens', 2, 'success', 1, {'return_value': 30}),
    ('zipped', 0, 'success', 1, {'return_value': {'__classname__': 'builtins.tuple', '__data__': [1, 'a'], '__version__': 1}}),
    ('zipped', 1, 'success', 1, {'return_value': {'__classname__': 'builtins.tuple', '__data__': [2, 'b'], '__version__': 1}}),
    ('zipped_long', 0, 'success', 1, {'return_value': {'__classname__': 'builtins.tuple', '__data__': [1, 'a'], '__version__': 1}}),
    ('zipped_long', 1, 'success', 1, {'return_value': {'__classname__': 'builtins.tuple', '__data__': [2, 'b'], '__version__': 1}}),
    ('zipped_long', 2, 'success', 1, {'return_value': {'__classname__': 'builtins.tuple', '__data__': [3, '-'], '__version__': 1}})
]


def test_map_zip_concat_as_airflow_ran_them(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    done = subprocess.run([sys.executable, "-m", "rtstream", "dags", "test", str(FIXTURE), "--json", "--at",
                           "2024-06-05T00:00:00+00:00"], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]  # failing[2] fails the run, as in Airflow
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    got = sorted((r["task_id"], r["map_index"], r["state"], r["tries"], r["xcom"]) for r in lines if "task_id" in r)
    assert got == sorted(AIRFLOW_3_3_2)
    assert lines[-1] == {"dag_id": "map_zip", "run_state": "failed"}
    assert "failing[2]" in done.stderr


@pytest.mark.usefixtures("stand_in")
@pytest.mark.parametrize(("line", "error"), [
    ("XComArg(nums().operator, 'k').map(str)",
     "cannot map against non-return XCom"),
    ("nums().map(show)", "map() argument must be a plain function, not a @task operator"),
])
def test_wrong_maps_are_load_errors(tmp_path: Path, line: str, error: str) -> None:
    from rtstream.airflow.dagbag import load

    text = FIXTURE.read_text().replace("from airflow.sdk import DAG, task", "from airflow.sdk import DAG, XComArg, task")
    (tmp_path / "m.py").write_text(text + f"    {line}\n")
    assert error in next(iter(load(tmp_path / "m.py").import_errors.values()))
