"""Mapped task groups (`@task_group` `.expand`, `.expand_kwargs`, `.partial`), as Airflow runs them:
every task of the group is mapped over the group's expansion, instance i of a task sees instance i of
its upstream in the group (values and trigger rule), a task after the group pulls every instance.
The corpus match is tests/compat's example_task_group_mapping (Airflow 3.3.2)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rtstream.airflow.dag_run import DagRun, RunResult
from rtstream.airflow.dagbag import load

AT = datetime(2024, 6, 3, tzinfo=UTC)
pytestmark = pytest.mark.usefixtures("stand_in")

DAG_FILE = '''
from datetime import datetime
from airflow.sdk import DAG, task, task_group
from airflow.sdk.exceptions import AirflowSkipException

with DAG("g", schedule=None, start_date=datetime(2024, 1, 1)):
    @task
    def nums():
        return [1, 2, 3]

    @task
    def add_1(num):
        if num == 2:
            raise ValueError("two is refused")
        return num + 1

    @task
    def mul(x, factor):
        return x * factor

    @task
    def constant():
        return "c"

    @task(trigger_rule="all_done")
    def collect(values):
        return sorted(values)

    @task_group
    def op(num, factor=2):
        return mul(add_1(num), factor)

    @task_group
    def also(num):
        constant()

    collect(op.partial(factor=10).expand(num=nums()))
    also.expand(num=[])

    @task_group
    def pair(a, b):
        @task
        def join(a, b):
            return f"{a}-{b}"
        join(a, b)

    pair.expand_kwargs([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}])
    pair.expand(a=[1, 2], b=["u", "v"])
'''


def run(tmp_path: Path, text: str = DAG_FILE) -> tuple[RunResult, dict[str, tuple[str | None, int]]]:
    (tmp_path / "g.py").write_text(text)
    bag = load(tmp_path / "g.py")
    assert bag.import_errors == {}
    r = asyncio.run(DagRun(bag.dags["g"], AT).run())
    return r, {f"{ti.task_id}[{ti.map_index}]": (ti.state, ti.try_number) for ti in r.task_instances}


def test_instances_follow_their_own_upstream_instance(tmp_path: Path) -> None:
    r, s = run(tmp_path)
    assert [s[f"op.add_1[{i}]"] for i in range(3)] == [("success", 1), ("failed", 1), ("success", 1)]
    # mul[1] waits on add_1[1] only: upstream_failed; the others ran with their own value
    assert [s[f"op.mul[{i}]"] for i in range(3)] == [("success", 1), ("upstream_failed", 0), ("success", 1)]
    assert [r.xcoms.of("op.mul", i) for i in range(3)] == [{"return_value": 20}, {}, {"return_value": 40}]
    assert r.xcoms.of("collect", -1) == {"return_value": [20, 40]}  # outside the group: every instance
    assert r.run_state == "success"  # the leaf collect (all_done) succeeded


def test_an_empty_expansion_skips_the_group(tmp_path: Path) -> None:
    _, s = run(tmp_path)
    assert s["also.constant[-1]"] == ("skipped", 0)


def test_expand_kwargs_and_the_cross_product(tmp_path: Path) -> None:
    r, s = run(tmp_path)
    assert [r.xcoms.of("pair.join", i)["return_value"] for i in range(2)] == ["1-x", "2-y"]
    assert [r.xcoms.of("pair__1.join", i)["return_value"] for i in range(4)] == ["1-u", "1-v", "2-u", "2-v"]
    assert all(s[f"pair__1.join[{i}]"] == ("success", 1) for i in range(4))


def test_a_mapped_task_inside_a_mapped_group_is_refused(tmp_path: Path) -> None:
    text = DAG_FILE + '''
    @task_group
    def nested(num):
        add_1.expand(num=[num])

    nested.expand(num=[1])
'''
    (tmp_path / "g.py").write_text(text)
    bag = load(tmp_path / "g.py")
    assert bag.refused_tasks(bag.dags["g"]) == [
        "task nested.add_1 (DecoratedPythonOperator): a mapped task inside the mapped task group nested "
        "is not run by rtstream yet"]


def test_wrong_expansions_are_errors_at_load_or_in_the_task(tmp_path: Path) -> None:
    (tmp_path / "g.py").write_text(DAG_FILE + "    op.expand()\n")
    assert "no arguments to expand against" in next(iter(load(tmp_path / "g.py").import_errors.values()))
    r, s = run(tmp_path, DAG_FILE.replace("also.expand(num=[])", "also.expand(num=5)"))
    assert s["also.constant[-1]"] == ("failed", 1)  # not a list: the mapped task fails, as in Airflow
    assert r.run_state == "failed"
