"""`pipeline_rows("PIPELINE")`: the rows of the window a `dag` sink ran this DAG for, as a TaskFlow
argument. The sink keeps them as the XCom `return_value` of a task id named after the pipeline,
which is not a task of the DAG, so this is an XComArg with no upstream to wait for:

    from rtstream.airflow.pipeline_rows import pipeline_rows

    @task
    def load(rows): ...

    load(pipeline_rows("clicks"))

The same rows are in `dag_run.conf["rows"]` (with `window_start` and `window_end`), which is what a
DAG that must also run under Airflow itself reads.
"""

from __future__ import annotations

from typing import Any

from rtstream.airflow.xcom_arg import RETURN_VALUE, XComArg


class PipelineTask:
    """The pipeline in the place of an upstream task: a task id to pull from, no edge in the DAG."""

    def __init__(self, name: str):
        self.task_id = name

    def set_downstream(self, other: Any) -> None:
        pass  # the rows are there before the run starts: nothing to wait for

    set_upstream = set_downstream


class PipelineRows(XComArg):
    def dep_roots(self) -> list[Any]:
        return []

    dep_leaves = dep_roots

    def __getitem__(self, key: str) -> XComArg:
        return PipelineRows(self.operator, key)


def pipeline_rows(pipeline: str, key: str = RETURN_VALUE) -> XComArg:
    """The window's rows, pulled from the XCom of the task id `pipeline` when the consuming task runs."""
    return PipelineRows(PipelineTask(pipeline), key)
