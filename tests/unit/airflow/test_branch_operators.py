"""The time-based branch operators, edge labels, expand_kwargs, `@task_group` id suffixes and
`task_instance_key_str`: DAG files written here, run in-process as `rtstream dags test` runs them."""

from __future__ import annotations

import asyncio
import textwrap
from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from rtstream.airflow.branch_operators import WeekDay, target_times_as_dates
from rtstream.airflow.dag_run import DagRun, RunResult
from rtstream.airflow.dagbag import load

AT = datetime(2024, 6, 3, tzinfo=UTC)  # a Monday
pytestmark = pytest.mark.usefixtures("stand_in")


def run(tmp_path: Path, source: str, dag_id: str) -> RunResult:
    path = tmp_path / "the_dag.py"
    path.write_text(textwrap.dedent(source))
    bag = load(path)
    assert bag.import_errors == {}
    return asyncio.run(DagRun(bag.dags[dag_id], AT).run())


def states(result: RunResult) -> dict[str, str | None]:
    return {ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): ti.state for ti in result.task_instances}


BRANCHES = """
    from datetime import datetime, time
    from airflow import DAG
    from airflow.operators.datetime import BranchDateTimeOperator
    from airflow.operators.empty import EmptyOperator
    from airflow.operators.latest_only import LatestOnlyOperator
    from airflow.operators.weekday import BranchDayOfWeekOperator
    from airflow.utils.edgemodifier import Label
    from airflow.utils.weekday import WeekDay
    with DAG("b", schedule="@daily", start_date=datetime(2021, 1, 1)):
        dt = BranchDateTimeOperator(task_id="dt", use_task_logical_date=True, follow_task_ids_if_true=["in_range"],
                                    follow_task_ids_if_false=["out_of_range"],
                                    target_lower=datetime(2024, 6, 2, 23), target_upper=datetime(2024, 6, 3, 1))
        dt >> Label("yes") >> EmptyOperator(task_id="in_range")
        dt >> Label("no") >> EmptyOperator(task_id="out_of_range")
        wd = BranchDayOfWeekOperator(task_id="wd", use_task_logical_date=True, week_day={WeekDay.SATURDAY, "sunday"},
                                     follow_task_ids_if_true="weekend", follow_task_ids_if_false="weekday")
        wd >> [EmptyOperator(task_id="weekend"), EmptyOperator(task_id="weekday")]
        LatestOnlyOperator(task_id="latest") >> EmptyOperator(task_id="only_latest")
"""


def test_datetime_weekday_and_latest_only_branch_with_labels_between(tmp_path: Path) -> None:
    r = run(tmp_path, BRANCHES, "b")
    assert states(r) == {"dt": "success", "in_range": "success", "out_of_range": "skipped", "wd": "success",
                         "weekend": "skipped", "weekday": "success", "latest": "success", "only_latest": "skipped"}
    assert r.xcoms.of("dt", -1) == {"return_value": ["in_range"]}
    assert r.xcoms.of("wd", -1) == {"return_value": "weekday"}
    assert r.xcoms.of("latest", -1) == {"return_value": []}  # 2024-06-03 is not the latest run: skipped


def test_target_times_and_week_days_as_airflow_reads_them() -> None:
    base = datetime(2024, 6, 3, 12)
    assert target_times_as_dates(base, time(15), time(0)) == (datetime(2024, 6, 3, 15), datetime(2024, 6, 4, 0))
    assert WeekDay.validate_week_day("Monday") == {1}
    with pytest.raises(AttributeError, match="Invalid Week Day"):
        WeekDay.validate_week_day("someday")


def test_expand_kwargs_group_suffixes_and_task_instance_key_str(tmp_path: Path) -> None:
    r = run(tmp_path, """
        from datetime import datetime
        from airflow import DAG
        from airflow.decorators import task, task_group
        from airflow.operators.bash import BashOperator
        with DAG("m", schedule=None, start_date=datetime(2021, 1, 1)):
            @task
            def pairs():
                return [{"x": 1, "y": 10}, {"x": 2, "y": 20}]
            @task
            def add(x, y):
                return x + y
            add.expand_kwargs(pairs())
            @task_group
            def grp(n):
                @task
                def one(n):
                    return n
                return one(n)
            for i in range(3):
                grp(i)
            grp.override(group_id="other")(9)
            BashOperator(task_id="key", bash_command="echo {{ task_instance_key_str }}")
    """, "m")
    assert states(r) == {"pairs": "success", "add[0]": "success", "add[1]": "success", "grp.one": "success",
                         "grp__1.one": "success", "grp__2.one": "success", "other.one": "success", "key": "success"}
    assert [r.xcoms.of("add", i)["return_value"] for i in (0, 1)] == [11, 22]
    assert r.xcoms.of("grp__2.one", -1) == {"return_value": 2}
    assert r.xcoms.of("key", -1) == {"return_value": "m__key__20240603"}


def test_templates_exts_makes_a_missing_template_file_fail_and_test_mode_is_off(tmp_path: Path) -> None:
    r = run(tmp_path, """
        from datetime import datetime
        from airflow import DAG
        from airflow.decorators import task
        with DAG("t", schedule=None, start_date=datetime(2021, 1, 1)):
            @task(templates_exts=[".sql"])
            def render(sql):
                return sql
            render(sql="no/such.sql")
            @task
            def mode(test_mode=None):
                return test_mode
            mode()
    """, "t")
    assert states(r) == {"render": "failed", "mode": "success"}
    assert r.xcoms.of("mode", -1) == {"return_value": False}  # airflow dags test runs tasks with test_mode off
