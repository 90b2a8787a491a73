"""Branching with skip propagation: the branch not taken is skipped with everything below it that
needs it; joins see the skip according to their trigger rule."""

from __future__ import annotations

import pendulum

from airflow.decorators import dag, task
from airflow.operators.empty import EmptyOperator
from airflow.operators.python import BranchPythonOperator


@dag(schedule="@daily", start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def compat_branching():
    @task.branch
    def pick(ds=None) -> str:
        # The logical date decides: deterministic for a given --at.
        return "left" if int(ds[-2:]) % 2 == 1 else "right"

    @task
    def left() -> str:
        return "went left"

    @task
    def right() -> str:
        return "went right"

    @task
    def after_left(value: str) -> str:
        return value.upper()

    @task
    def after_right(value: str) -> str:
        return value.upper()

    join_default = EmptyOperator(task_id="join_all_success")
    join_tolerant = EmptyOperator(task_id="join_none_failed_min_one_success", trigger_rule="none_failed_min_one_success")

    b = pick()
    lv, rv = left(), right()
    b >> [lv, rv]
    al, ar = after_left(lv), after_right(rv)
    [al, ar] >> join_default
    [al, ar] >> join_tolerant

    # A classic branch returning a list, and one returning None (skips every direct downstream).
    def choose_many():
        return ["many_a", "many_b"]

    many = BranchPythonOperator(task_id="branch_many", python_callable=choose_many)
    many >> [EmptyOperator(task_id="many_a"), EmptyOperator(task_id="many_b"), EmptyOperator(task_id="many_c")]

    nothing = BranchPythonOperator(task_id="branch_none", python_callable=lambda: None)
    nothing >> EmptyOperator(task_id="none_child") >> EmptyOperator(task_id="none_grandchild")


compat_branching()
