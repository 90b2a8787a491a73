"""Datasets / assets in schedules and outlets, `outlet_events`, a yielded `Metadata`, `@asset`, and
setup / teardown tasks: DAG files written here, loaded and run in-process as `rtstream dags test` does."""

from __future__ import annotations

import asyncio
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rtstream.airflow.dag_run import DagRun, RunResult
from rtstream.airflow.dagbag import load
from rtstream.airflow.timetable import manual_data_interval

AT = datetime(2024, 6, 3, tzinfo=UTC)
pytestmark = pytest.mark.usefixtures("stand_in")


def run(tmp_path: Path, source: str, dag_id: str) -> RunResult:
    path = tmp_path / "the_dag.py"
    path.write_text(textwrap.dedent(source))
    bag = load(path)
    assert bag.import_errors == {}
    return asyncio.run(DagRun(bag.dags[dag_id], AT).run())


def states(result: RunResult) -> dict[str, str | None]:
    return {ti.task_id: ti.state for ti in result.task_instances}


def test_dataset_expressions_and_timetables_load_and_run_once(tmp_path: Path) -> None:
    source = """
        from datetime import datetime
        from airflow import DAG
        from airflow.datasets import Dataset
        from airflow.decorators import task
        from airflow.timetables.datasets import DatasetOrTimeSchedule
        from airflow.timetables.trigger import CronTriggerTimetable
        a, b, c = Dataset("s3://a"), Dataset("s3://b", extra={"hi": "bye"}), Dataset("s3://c")
        for dag_id, schedule in [("either", a | (b & c)), ("listed", [a, b]),
                                 ("timed", DatasetOrTimeSchedule(timetable=CronTriggerTimetable("0 1 * * 3",
                                                                 timezone="UTC"), datasets=a & b))]:
            with DAG(dag_id, schedule=schedule, start_date=datetime(2021, 1, 1)):
                @task(outlets=[a])
                def produce(outlet_events=None, outlets=None):
                    return [repr(o) for o in outlets]
                produce()
    """
    for dag_id in ("either", "listed", "timed"):
        r = run(tmp_path, source, dag_id)
        assert r.run_state == "success"
        assert r.xcoms.of("produce", -1) == {"return_value": ["Dataset(uri='s3://a', extra=None)"]}
    bag = load(tmp_path / "the_dag.py")
    assert manual_data_interval(bag.dags["timed"], AT) == (AT, AT)  # CronTriggerTimetable: no interval


def test_outlet_events_and_yielded_metadata_reach_the_event(tmp_path: Path) -> None:
    r = run(tmp_path, """
        from datetime import datetime
        from airflow import DAG
        from airflow.datasets import Dataset, DatasetAlias
        from airflow.datasets.metadata import Metadata
        from airflow.decorators import task
        ds = Dataset("s3://out/1.txt")
        with DAG("events", schedule=None, start_date=datetime(2021, 1, 1)):
            @task(outlets=[ds, DatasetAlias("al")])
            def by_yield(*, outlet_events=None, inlet_events=None):
                yield Metadata(ds, {"hi": "bye"})
                yield "ignored"
                outlet_events[DatasetAlias("al")].add(Dataset("s3://x"))
                return (outlet_events[ds].extra, len(outlet_events[DatasetAlias("al")].asset_alias_events),
                        list(inlet_events[ds]))
            by_yield()
    """, "events")
    assert states(r) == {"by_yield": "success"}
    assert r.xcoms.of("by_yield", -1) == {"return_value": ({"hi": "bye"}, 1, [])}


def test_asset_decorator_makes_a_dag_whose_task_gets_self_and_context_names(tmp_path: Path) -> None:
    source = """
        from airflow.sdk import Asset, asset
        @asset(uri="s3://bucket/first", schedule=None)
        def first():
            return "one"
        @asset(schedule=Asset.ref(name="first") | Asset(name="other"))
        def second(self, context, first, outlet_events):
            outlet_events[self].add_partitions(["us", "us", "eu"])
            return [self.uri, first.uri, sorted(context) == sorted(context), outlet_events[self].partition_keys]
    """
    r = run(tmp_path, source, "second")
    assert states(r) == {"second": "success"}
    assert r.xcoms.of("second", -1) == {"return_value": ["second", "s3://bucket/first", True, ["us", "eu"]]}
    assert run(tmp_path, source, "first").xcoms.of("first", -1) == {"return_value": "one"}


SETUP_TEARDOWN = """
    from datetime import datetime
    from airflow import DAG
    from airflow.decorators import setup, task, teardown
    from airflow.operators.bash import BashOperator
    with DAG("st", schedule=None, start_date=datetime(2021, 1, 1)):
        s = BashOperator(task_id="s", bash_command="{setup_cmd}").as_setup()
        work = BashOperator(task_id="work", bash_command="echo work")
        later = BashOperator(task_id="later", bash_command="exit 1")
        t = BashOperator(task_id="t", bash_command="echo bye").as_teardown(setups=s)
        s >> work >> later >> t

        @setup
        def make():
            return "cluster"
        @teardown
        def drop(cluster):
            return f"dropped {{cluster}}"
        @task
        def inner():
            return "in"
        with drop(make()):
            inner()
"""


def test_teardown_runs_after_a_failure_and_does_not_decide_the_run(tmp_path: Path) -> None:
    r = run(tmp_path, SETUP_TEARDOWN.format(setup_cmd="echo hi"), "st")
    assert states(r) == {"s": "success", "work": "success", "later": "failed", "t": "success",
                         "make": "success", "drop": "success", "inner": "success"}
    assert r.run_state == "failed"  # `later` is the effective leaf: the teardown after it is ignored
    assert r.xcoms.of("drop", -1) == {"return_value": "dropped cluster"}
    dag = load(tmp_path / "the_dag.py").dags["st"]
    assert dag.task_dict["inner"].upstream_task_ids == {"make"}  # `with teardown:` wraps the block
    assert dag.task_dict["drop"].upstream_task_ids == {"make", "inner"}
    assert dag.task_dict["t"].trigger_rule == "all_done_setup_success"


def test_a_failed_setup_fails_its_scope_and_its_teardown_is_upstream_failed(tmp_path: Path) -> None:
    r = run(tmp_path, SETUP_TEARDOWN.format(setup_cmd="exit 3"), "st")
    assert {k: v for k, v in states(r).items() if k in ("s", "work", "later", "t")} == {
        "s": "failed", "work": "upstream_failed", "later": "upstream_failed", "t": "upstream_failed"}


def test_a_timetable_rtstream_does_not_know_still_gives_a_manual_run(tmp_path: Path) -> None:
    r = run(tmp_path, """
        from datetime import datetime
        from airflow import DAG
        from airflow.example_dags.plugins.workday import AfterWorkdayTimetable
        from airflow.operators.empty import EmptyOperator
        with DAG("w", schedule=AfterWorkdayTimetable(), start_date=datetime(2021, 1, 1)):
            EmptyOperator(task_id="run_this")
    """, "w")
    assert states(r) == {"run_this": "success"}
