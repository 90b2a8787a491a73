"""A task gets a task instance only when its start_date <= the logical date <= its end_date (Airflow's
DagRun.verify_integrity, dates merged as DAG.add_task does). Corpus matches: the task and asset state
store examples of Airflow 3.3.2 (start_date 2026-01-01, run at 2024-06-03: a run with no task
instance, successful)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rtstream.airflow.dag_run import DagRun
from rtstream.airflow.dagbag import load
from rtstream.airflow.task_dates import gets_instance, task_dates

pytestmark = pytest.mark.usefixtures("stand_in")

DAG_FILE = '''
from datetime import datetime, timezone
from airflow import DAG
from airflow.operators.empty import EmptyOperator

with DAG("early", schedule=None, start_date=datetime(2024, 1, 1)):
    a = EmptyOperator(task_id="a")
    later = EmptyOperator(task_id="later", start_date=datetime(2024, 7, 1, tzinfo=timezone.utc))
    ended = EmptyOperator(task_id="ended", end_date=datetime(2024, 5, 1))
    before_dag = EmptyOperator(task_id="before_dag", start_date=datetime(2020, 1, 1))
    a >> later

with DAG("future", schedule=None, start_date=datetime(2026, 1, 1), end_date=datetime(2026, 6, 1)):
    EmptyOperator(task_id="x") >> EmptyOperator(task_id="y")
'''


def states(tmp_path: Path, dag_id: str, at: datetime) -> tuple[str, dict[str, str | None]]:
    (tmp_path / "d.py").write_text(DAG_FILE)
    bag = load(tmp_path / "d.py")
    r = asyncio.run(DagRun(bag.dags[dag_id], at).run())
    return r.run_state, {ti.task_id: ti.state for ti in r.task_instances}


def test_a_dag_that_starts_after_the_logical_date_runs_no_task(tmp_path: Path) -> None:
    assert states(tmp_path, "future", datetime(2024, 6, 3, tzinfo=UTC)) == ("success", {})
    assert states(tmp_path, "future", datetime(2026, 3, 1, tzinfo=UTC)) == ("success", {"x": "success", "y": "success"})
    assert states(tmp_path, "future", datetime(2026, 6, 2, tzinfo=UTC)) == ("success", {})  # after end_date


def test_task_dates_merge_with_the_dags(tmp_path: Path) -> None:
    run_state, s = states(tmp_path, "early", datetime(2024, 6, 3, tzinfo=UTC))
    assert s == {"a": "success", "before_dag": "success"}  # later starts after, ended ended before
    assert run_state == "success"
    (tmp_path / "d.py").write_text(DAG_FILE)
    dag = load(tmp_path / "d.py").dags["early"]
    # the later start wins, naive dates are UTC
    assert task_dates(dag, dag.task_dict["before_dag"]) == (datetime(2024, 1, 1, tzinfo=UTC), None)
    assert task_dates(dag, dag.task_dict["ended"]) == (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 5, 1, tzinfo=UTC))
    assert gets_instance(dag, dag.task_dict["later"], datetime(2024, 6, 3, tzinfo=UTC), "backfill")
    assert gets_instance(dag, dag.task_dict["later"], datetime(2024, 7, 1, tzinfo=UTC))
