"""The task context and Jinja templates: ds, ts, logical_date, data interval, params, op_kwargs and
templates_dict rendered, macros; all values depend only on the logical date."""

from __future__ import annotations

import pendulum

from airflow.decorators import task
from airflow.models.dag import DAG
from airflow.operators.python import PythonOperator, get_current_context


def _templated(day, stamp, templates_dict=None):
    return {"day": day, "stamp": stamp, "tpl": templates_dict}


with DAG(
    dag_id="compat_context_templates",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"who": "world", "n": 3},
) as dag:

    @task
    def from_context(ds=None, ts=None, logical_date=None, data_interval_start=None,
                     data_interval_end=None, params=None) -> dict:
        return {
            "ds": ds,
            "ts": ts,
            "logical_date": logical_date.isoformat(),
            "start": data_interval_start.isoformat(),
            "end": data_interval_end.isoformat(),
            "params": dict(params),
        }

    @task
    def current_context() -> dict:
        ctx = get_current_context()
        return {"ds_nodash": ctx["ds_nodash"], "task_id": ctx["ti"].task_id, "dag_id": ctx["dag"].dag_id,
                "run_type": ctx["dag_run"].run_type}

    templated = PythonOperator(
        task_id="templated",
        python_callable=_templated,
        op_kwargs={"day": "{{ ds }}", "stamp": "{{ macros.ds_add(ds, 7) }}"},
        templates_dict={"greeting": "hello {{ params.who }}", "prev": "{{ macros.ds_format(ds, '%Y-%m-%d', '%d/%m/%Y') }}"},
    )

    from_context() >> current_context() >> templated
