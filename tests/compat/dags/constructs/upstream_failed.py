"""A failing task: its downstream is upstream_failed, transitively; an independent branch still
succeeds; the run fails."""

from __future__ import annotations

import pendulum

from airflow.models.dag import DAG
from airflow.operators.bash import BashOperator
from airflow.operators.empty import EmptyOperator
from airflow.operators.python import PythonOperator


def _boom():
    raise RuntimeError("boom")


dag = DAG(
    dag_id="compat_upstream_failed",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
)

start = EmptyOperator(task_id="start", dag=dag)
boom = PythonOperator(task_id="boom", python_callable=_boom, dag=dag)
child = EmptyOperator(task_id="child", dag=dag)
grandchild = BashOperator(task_id="grandchild", bash_command="echo never", dag=dag)
independent = BashOperator(task_id="independent", bash_command="echo fine", dag=dag)
cleanup = BashOperator(task_id="cleanup", bash_command="echo cleaned", trigger_rule="all_done", dag=dag)

start >> boom >> child >> grandchild >> cleanup
start >> independent >> cleanup
