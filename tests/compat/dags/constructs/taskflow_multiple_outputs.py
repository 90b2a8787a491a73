"""TaskFlow: multiple_outputs splits a returned dict into one XCom per key; arguments wire the DAG."""

from __future__ import annotations

import pendulum

from airflow.decorators import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def compat_taskflow_multiple_outputs():
    @task(multiple_outputs=True)
    def split() -> dict[str, int]:
        return {"low": 3, "high": 7}

    @task
    def total(low: int, high: int) -> int:
        return low + high

    @task
    def describe(parts: dict[str, int], total_value: int) -> str:
        return f"{parts['low']}+{parts['high']}={total_value}"

    @task
    def typed_multiple() -> dict[str, list[int]]:
        # Inferred multiple_outputs from the dict return annotation (Airflow does this for TaskFlow).
        return {"evens": [0, 2, 4], "odds": [1, 3]}

    @task
    def count(values: list[int]) -> int:
        return len(values)

    parts = split()
    t = total(parts["low"], parts["high"])
    describe(parts, t)
    typed = typed_multiple()
    count.override(task_id="count_evens")(typed["evens"])


compat_taskflow_multiple_outputs()
