"""A DAG file written for Airflow 3 (it imports airflow.sdk) runs with Airflow 3.3's semantics where they
differ from Airflow 2.10's; the same DAG through Airflow 2's module paths keeps 2.10's. Each case is what
the real Airflow recorded in tests/compat (example_branch_dop_operator_v3, latest_only_with_trigger,
tutorial_dag, example_task_group of the 3.3.2 set)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rtstream.airflow.airflow3 import file_major, stored_value, stored_xcoms
from rtstream.airflow.dag_run import DagRun, RunResult
from rtstream.airflow.dagbag import load

AT = datetime(2024, 6, 3, tzinfo=UTC)
pytestmark = pytest.mark.usefixtures("stand_in")

BODY = '''
import pendulum
from datetime import timedelta

with DAG("d", schedule="@daily", start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False):
    @task.branch
    def pick():
        return "left"

    @task.branch
    def keep_all():
        return ["a", "b"]

    @task.short_circuit
    def gate():
        return 0

    @task
    def left():
        return '{"n": 1}'

    @task
    def right():
        return "plain"

    latest = LatestOnlyOperator(task_id="latest")
    after_latest = EmptyOperator(task_id="after_latest")
    latest >> after_latest
    pick() >> [left(), right()]
    keep_all() >> [EmptyOperator(task_id="a"), EmptyOperator(task_id="b")]
    gate() >> EmptyOperator(task_id="gated")
'''
AIRFLOW3 = ("from airflow.sdk import DAG, task\n"
            "from airflow.providers.standard.operators.empty import EmptyOperator\n"
            "from airflow.providers.standard.operators.latest_only import LatestOnlyOperator\n") + BODY
AIRFLOW2 = ("from airflow import DAG\nfrom airflow.decorators import task\n"
            "from airflow.operators.empty import EmptyOperator\n"
            "from airflow.operators.latest_only import LatestOnlyOperator\n") + BODY


def run(tmp_path: Path, source: str) -> RunResult:
    (tmp_path / "dag.py").write_text(source)
    bag = load(tmp_path / "dag.py")
    assert bag.import_errors == {}
    return asyncio.run(DagRun(bag.dags["d"], AT).run())


def test_the_task_sdk_import_marks_a_file_for_airflow3(tmp_path: Path) -> None:
    cases = {"from airflow.sdk import DAG\n": 3, "import airflow.sdk\n": 3, "  from airflow.sdk.bases import x\n": 3,
             "from airflow import DAG\n": 2, "from airflow.sdkx import y\n": 2, "# from airflow.sdk import DAG\n": 2,
             "x = 'from airflow.sdk import DAG'\n": 2}
    for i, (text, major) in enumerate(cases.items()):
        (tmp_path / f"f{i}.py").write_text(text)
        assert file_major(tmp_path / f"f{i}.py") == major, text
    assert file_major(tmp_path / "missing.py") == 2


def test_airflow3_branch_that_skips_keeps_no_return_value(tmp_path: Path) -> None:
    r = run(tmp_path, AIRFLOW3)
    states = {ti.task_id: ti.state for ti in r.task_instances}
    assert (states["left"], states["right"], states["a"], states["b"], states["gated"]) == \
        ("success", "skipped", "success", "success", "skipped")
    assert r.xcoms.of("pick", -1) == {}  # DownstreamTasksSkipped ended the try before the push
    assert r.xcoms.of("gate", -1) == {}
    assert r.xcoms.of("keep_all", -1) == {"return_value": ["a", "b"]}  # nothing skipped: kept
    # a manual run (dags test) goes through LatestOnlyOperator in Airflow 3
    assert (states["latest"], states["after_latest"]) == ("success", "success")
    assert r.xcoms.of("latest", -1) == {"return_value": ["after_latest"]}
    assert r.run_state == "success"


def test_airflow2_keeps_its_own_semantics(tmp_path: Path) -> None:
    r = run(tmp_path, AIRFLOW2)
    states = {ti.task_id: ti.state for ti in r.task_instances}
    assert r.xcoms.of("pick", -1) == {"return_value": "left"}
    assert r.xcoms.of("gate", -1) == {"return_value": 0}
    assert (states["latest"], states["after_latest"]) == ("success", "skipped")  # an old logical date


def test_airflow3_xcoms_read_back_as_its_metadata_db_gives_them(tmp_path: Path) -> None:
    r = run(tmp_path, AIRFLOW3)
    assert r.xcoms.of("left", -1) == {"return_value": '{"n": 1}'}  # as pushed: a task pulls the string
    bag = load(tmp_path / "dag.py")
    assert stored_xcoms(bag.dags["d"], r.xcoms.of("left", -1)) == {"return_value": {"n": 1}}
    assert stored_xcoms(bag.dags["d"], {"return_value": "plain", "k": "2"}) == {"return_value": "plain", "k": 2}
    assert [stored_value(v) for v in ("1", "[1, 2]", "null", "not json", 5, ["1"])] == \
        [1, [1, 2], None, "not json", 5, ["1"]]
    bag.dags["d"].airflow_major = 2
    assert stored_xcoms(bag.dags["d"], {"return_value": "1"}) == {"return_value": "1"}
