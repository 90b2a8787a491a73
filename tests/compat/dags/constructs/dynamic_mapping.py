"""Dynamic task mapping: .expand over a literal, over an upstream's output, .partial().expand,
expand_kwargs, a mapped classic operator, a reduce over the mapped results, and an empty expansion
(which skips the mapped task)."""

from __future__ import annotations

import pendulum

from airflow.decorators import dag, task
from airflow.operators.bash import BashOperator


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def compat_dynamic_mapping():
    @task
    def make_numbers() -> list[int]:
        return [1, 2, 3]

    @task
    def add(x: int, y: int) -> int:
        return x + y

    @task
    def square(x: int) -> int:
        return x * x

    @task
    def total(values) -> int:
        return sum(values)

    @task
    def make_pairs() -> list[dict[str, int]]:
        return [{"x": 1, "y": 10}, {"x": 2, "y": 20}]

    @task
    def nothing() -> list[int]:
        return []

    @task
    def never(x: int) -> int:
        return x

    squares = square.expand(x=make_numbers())
    total(squares)
    add.override(task_id="add_partial").partial(y=100).expand(x=[5, 6])
    add.override(task_id="add_cross").expand(x=[1, 2], y=[10, 20])
    add.override(task_id="add_kwargs").expand_kwargs(make_pairs())
    never.expand(x=nothing())
    BashOperator.partial(task_id="bash_mapped").expand(bash_command=["echo a", "echo b", "exit 99"])


compat_dynamic_mapping()
