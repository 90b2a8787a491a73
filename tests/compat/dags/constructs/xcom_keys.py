"""XCom push and pull with keys: ti.xcom_push, xcom_pull by task_ids (one and many), by key, from a
mapped task by map_indexes, templates pulling XCom, do_xcom_push=False."""

from __future__ import annotations

import pendulum

from airflow.decorators import dag, task
from airflow.operators.bash import BashOperator
from airflow.operators.python import PythonOperator


def _push(ti=None):
    ti.xcom_push(key="colour", value="blue")
    ti.xcom_push(key="sizes", value=[1, 2, 3])
    return {"pushed": 2}


def _quiet():
    return "not kept"


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def compat_xcom_keys():
    push = PythonOperator(task_id="push", python_callable=_push)
    quiet = PythonOperator(task_id="quiet", python_callable=_quiet, do_xcom_push=False)

    @task
    def other() -> str:
        return "other value"

    @task
    def pull(ti=None) -> dict:
        return {
            "colour": ti.xcom_pull(task_ids="push", key="colour"),
            "sizes": ti.xcom_pull(task_ids="push", key="sizes"),
            "ret": ti.xcom_pull(task_ids="push"),
            # A list of task_ids gives a lazy sequence in Airflow 2.10, not JSON-serialisable as it is.
            "many": list(ti.xcom_pull(task_ids=["push", "other"])),
            "quiet": ti.xcom_pull(task_ids="quiet"),
            "missing_key": ti.xcom_pull(task_ids="push", key="nope"),
        }

    @task
    def mapped(x: int) -> int:
        return x * 10

    @task
    def pull_mapped(ti=None) -> dict:
        return {
            "one": ti.xcom_pull(task_ids="mapped", map_indexes=1),
            "all": list(ti.xcom_pull(task_ids="mapped")),
        }

    templated = BashOperator(
        task_id="templated_pull",
        bash_command="echo {{ ti.xcom_pull(task_ids='push', key='colour') }}",
    )

    o = other()
    [push, quiet, o] >> pull()
    m = mapped.expand(x=[1, 2, 3])
    m >> pull_mapped()
    push >> templated


compat_xcom_keys()
