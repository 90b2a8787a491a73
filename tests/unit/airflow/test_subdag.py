"""A SubDagOperator's sub-DAG is a DAG of the file (`parent.child`), runnable by its id as under
`airflow dags test`; the SubDagOperator itself is refused with the reason, and the daemon does not
schedule a sub-DAG (Airflow's scheduler does not). Corpus matches: example_subdag_operator.section-1
and .section-2 (2.10.5), whose factory comes from `airflow.example_dags.subdags.subdag`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rtstream.airflow.dag_run import DagRun
from rtstream.airflow.dagbag import load
from rtstream.config.dags import DagsSettings
from rtstream.config.models import DaemonConfig
from rtstream.run.dags_daemon import _load_dags

pytestmark = pytest.mark.usefixtures("stand_in")

FILE = '''
from datetime import datetime
from airflow.example_dags.subdags.subdag import subdag
from airflow.models.dag import DAG
from airflow.operators.empty import EmptyOperator
from airflow.operators.subdag import SubDagOperator

def mine(parent, child):
    with DAG(f"{parent}.{child}", schedule=None, start_date=datetime(2024, 1, 1)) as d:
        EmptyOperator(task_id="inner")
    return d

with DAG("parent", default_args={"retries": 2}, start_date=datetime(2022, 1, 1), schedule="@once") as dag:
    SubDagOperator(task_id="section", subdag=subdag("parent", "section", dag.default_args))
    SubDagOperator(task_id="own", subdag=mine("parent", "own"))
'''


def test_sub_dags_are_dags_of_the_file_and_the_operator_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p.py").write_text(FILE)
    bag = load(tmp_path / "p.py")
    assert sorted(bag.dags) == ["parent", "parent.own", "parent.section"]
    sub = bag.dags["parent.section"]
    assert [t.task_id for t in sub.tasks] == [f"section-task-{i}" for i in range(1, 6)]
    assert sub.fileloc == str(tmp_path / "p.py") and sub.parent_dag is bag.dags["parent"]
    assert bag.refused_tasks(sub) == []
    refused = bag.refused_tasks(bag.dags["parent"])
    assert len(refused) == 2 and refused[0].startswith("task section (SubDagOperator): SubDagOperator (deprecated")
    r = asyncio.run(DagRun(sub, datetime(2024, 6, 3, tzinfo=UTC)).run())
    assert [(ti.task_id, ti.state, ti.try_number) for ti in r.task_instances][0] == ("section-task-1", "success", 1)
    assert r.run_state == "success"


def test_a_sub_dag_must_be_named_after_its_parent_and_task(tmp_path: Path) -> None:
    (tmp_path / "p.py").write_text(FILE.replace('mine("parent", "own")', 'mine("other", "own")'))
    err = next(iter(load(tmp_path / "p.py").import_errors.values()))
    assert "Expected 'parent.own'; received 'other.own'" in err


def test_the_daemon_does_not_schedule_sub_dags(tmp_path: Path) -> None:
    (tmp_path / "p.py").write_text(FILE)
    loaded = _load_dags(DagsSettings(tmp_path, DaemonConfig(state_dir=str(tmp_path / "state"))))
    assert loaded is not None
    runnable, not_scheduled = loaded
    assert runnable == []
    assert {n["dag_id"]: n["reason"].split(":")[0] for n in not_scheduled} == {
        "parent": "task section (SubDagOperator)", "parent.section": "a sub-DAG of a SubDagOperator",
        "parent.own": "a sub-DAG of a SubDagOperator"}
