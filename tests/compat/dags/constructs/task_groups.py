"""TaskGroups: ids prefixed by the group, nested groups, a group as a dependency, @task_group with
arguments, prefix_group_id=False."""

from __future__ import annotations

import pendulum

from airflow.decorators import dag, task, task_group
from airflow.operators.empty import EmptyOperator
from airflow.utils.task_group import TaskGroup


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def compat_task_groups():
    start = EmptyOperator(task_id="start")

    with TaskGroup("extract") as extract:
        @task
        def one() -> int:
            return 1

        @task
        def two() -> int:
            return 2

        a, b = one(), two()
        with TaskGroup("inner"):
            EmptyOperator(task_id="deep")

    with TaskGroup("flat", prefix_group_id=False) as flat:
        EmptyOperator(task_id="not_prefixed")

    @task_group
    def transform(value: int):
        @task
        def double(v: int) -> int:
            return v * 2

        @task
        def inc(v: int) -> int:
            return v + 1

        return inc(double(value))

    @task
    def combine(x: int, y: int) -> int:
        return x + y

    end = EmptyOperator(task_id="end")
    start >> extract >> flat
    result = combine(transform(a), transform.override(group_id="transform_b")(b))
    flat >> end
    result >> end


compat_task_groups()
