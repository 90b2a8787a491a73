"""Airflow 2.10's PrevDagrunDep on the run store (rtstream.dags.past_runs): which run is the previous
one (by logical date; with catchup, not a manual one), the first-run and ignore_first_depends_on_past
cases, a task added after the previous run, a previous run still running, and wait_for_downstream."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rtstream.airflow.past_deps import DOWNSTREAM, NOT_RUN_YET
from rtstream.dags.past_runs import PastRuns
from rtstream.dags.store import RunStore

pytestmark = pytest.mark.usefixtures("stand_in")
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _dag(catchup: bool = True, ignore_first: bool = True, task_start: datetime | None = None):  # noqa: ANN202
    from airflow import DAG
    from airflow.operators.empty import EmptyOperator

    with DAG("d", start_date=T0, schedule="@daily", catchup=catchup) as dag:
        a = EmptyOperator(task_id="a", depends_on_past=True, ignore_first_depends_on_past=ignore_first,
                          **({"start_date": task_start} if task_start else {}))
        w = EmptyOperator(task_id="w", wait_for_downstream=True)
        a >> w >> EmptyOperator(task_id="down")
    return dag


def _run(store: RunStore, day: int, run_type: str = "scheduled", states: dict[str, str | None] | None = None,
         finished: str | None = "success") -> str:
    at = T0 + timedelta(days=day)
    run_id = f"{run_type}__{at.isoformat()}"
    store.create_run("d", run_id, at, (at, at + timedelta(days=1)), run_type, at)
    for task_id, state in (states or {}).items():
        store.save_ti("d", run_id, task_id, -1, state, 1, None, None, at)
    if finished:
        store.finish_run("d", run_id, finished, at)
    return run_id


def _held(store: RunStore, dag, day: int, task_id: str) -> str | None:  # noqa: ANN001
    at = T0 + timedelta(days=day)
    past = PastRuns(store, dag, f"scheduled__{at.isoformat()}", at)
    return past.held(dag.task_dict[task_id], None)


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "runs.db")


def test_first_run_is_free_and_a_failed_previous_holds(store: RunStore) -> None:
    dag = _dag()
    assert _held(store, dag, 0, "a") is None
    _run(store, 0, states={"a": "failed", "w": "upstream_failed", "down": "upstream_failed"}, finished="failed")
    assert _held(store, dag, 1, "a") == ("depends_on_past is true for this task, but 1 previous task instance(s) "
                                         "are not in a successful state.")
    assert _held(store, dag, 1, "down") is None  # no depends_on_past


def test_with_catchup_a_manual_run_is_not_the_previous_one(store: RunStore) -> None:
    _run(store, 0, states={"a": "success"})
    _run(store, 1, run_type="manual", states={"a": "failed"}, finished="failed")
    assert _held(store, _dag(catchup=True), 2, "a") is None  # get_previous_scheduled_dagrun: day 0
    assert _held(store, _dag(catchup=False), 2, "a") is not None  # get_previous_dagrun: the manual one


def test_a_task_new_since_the_previous_run(store: RunStore) -> None:
    _run(store, 0, states={"w": "success", "down": "success"})  # finished without any instance of `a`
    assert _held(store, _dag(ignore_first=True), 1, "a") is None
    assert _held(store, _dag(ignore_first=False), 1, "a") == NOT_RUN_YET
    _run(store, 1, states={"a": "success", "w": "success", "down": "success"})
    _run(store, 2, states={"w": "success", "down": "success"})
    assert _held(store, _dag(ignore_first=True), 3, "a") == NOT_RUN_YET  # it had instances before


def test_a_previous_run_still_running_holds_until_its_instance_succeeds(store: RunStore) -> None:
    run0 = _run(store, 0, states={}, finished=None)
    assert _held(store, _dag(), 1, "a") == ("depends_on_past is true for this task, but 1 previous task "
                                            "instance(s) are not in a successful state.")
    store.save_ti("d", run0, "a", -1, "success", 1, None, None, T0)
    assert _held(store, _dag(), 1, "a") is None


def test_previous_run_before_the_task_start_date_is_free_with_catchup(store: RunStore) -> None:
    _run(store, 0, states={"a": "failed"}, finished="failed")
    assert _held(store, _dag(task_start=T0 + timedelta(days=1)), 1, "a") is None


def test_wait_for_downstream(store: RunStore) -> None:
    _run(store, 0, states={"a": "success", "w": "success", "down": "failed"}, finished="failed")
    assert _held(store, _dag(), 1, "w") == DOWNSTREAM
    _run(store, 1, states={"a": "success", "w": "success", "down": "skipped"})
    assert _held(store, _dag(), 2, "w") is None
