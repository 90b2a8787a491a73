"""depends_on_past and wait_for_downstream over three consecutive scheduled runs (catchup, @daily,
2024-06-01 to 2024-06-03), a task failing in the first run only. Recorded under the real Airflow
scheduler (tests/compat/runs_oracle.py) and replayed under `rtstream run --dags`
(tests/compat/test_compat_runs.py).

compat_past: first >> held >> last; `held` has depends_on_past and fails on 2024-06-01. `late`
(depends_on_past, start_date 2024-06-02) was not active at the first run. `skips_first`
(depends_on_past) skips itself on 2024-06-01: a skipped previous instance does not hold the next.
compat_wfd: guarded >> down; `guarded` has wait_for_downstream; `down` fails on 2024-06-01."""

from __future__ import annotations

import pendulum

from airflow import DAG
from airflow.exceptions import AirflowSkipException
from airflow.operators.python import PythonOperator

START = pendulum.datetime(2024, 6, 1, tz="UTC")
END = pendulum.datetime(2024, 6, 3, tz="UTC")


def work(ds=None, ti=None):
    if ti.task_id in ("held", "down") and ds == "2024-06-01":
        raise ValueError(f"{ti.task_id} fails on {ds} on purpose")
    if ti.task_id == "skips_first" and ds == "2024-06-01":
        raise AirflowSkipException(f"skipped on {ds} on purpose")
    return f"{ti.task_id} {ds}"


with DAG("compat_past", schedule="@daily", start_date=START, end_date=END, catchup=True) as compat_past:
    first = PythonOperator(task_id="first", python_callable=work)
    held = PythonOperator(task_id="held", python_callable=work, depends_on_past=True)
    last = PythonOperator(task_id="last", python_callable=work)
    late = PythonOperator(task_id="late", python_callable=work, depends_on_past=True,
                          start_date=pendulum.datetime(2024, 6, 2, tz="UTC"))
    skips_first = PythonOperator(task_id="skips_first", python_callable=work, depends_on_past=True)
    first >> held >> last

with DAG("compat_wfd", schedule="@daily", start_date=START, end_date=END, catchup=True) as compat_wfd:
    guarded = PythonOperator(task_id="guarded", python_callable=work, wait_for_downstream=True)
    down = PythonOperator(task_id="down", python_callable=work)
    guarded >> down
