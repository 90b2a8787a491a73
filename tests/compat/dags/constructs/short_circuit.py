"""Short-circuit: a false condition skips everything downstream (ignore_downstream_trigger_rules=True,
the default) or only the direct downstream, leaving trigger rules to decide further down (False)."""

from __future__ import annotations

import pendulum

from airflow.decorators import dag, task
from airflow.operators.empty import EmptyOperator
from airflow.operators.python import ShortCircuitOperator


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def compat_short_circuit():
    @task.short_circuit
    def go() -> bool:
        return True

    @task.short_circuit
    def stop() -> bool:
        return False

    go() >> EmptyOperator(task_id="go_child") >> EmptyOperator(task_id="go_grandchild")
    stop() >> EmptyOperator(task_id="stop_child") >> EmptyOperator(
        task_id="stop_grandchild_all_done", trigger_rule="all_done")

    soft = ShortCircuitOperator(task_id="soft_stop", python_callable=lambda: 0,
                                ignore_downstream_trigger_rules=False)
    soft >> EmptyOperator(task_id="soft_child") >> EmptyOperator(
        task_id="soft_grandchild_all_done", trigger_rule="all_done")


compat_short_circuit()
