"""Building DAGs as DAG files do: arrows, groups, chain, default_args, TaskFlow ids, refusal of
operators rtstream does not run."""

from __future__ import annotations

from datetime import timedelta

import pytest

pytestmark = pytest.mark.usefixtures("stand_in")


def test_arrows_lists_groups_and_chain() -> None:
    from airflow import DAG
    from airflow.models.baseoperator import chain, cross_downstream
    from airflow.operators.empty import EmptyOperator
    from airflow.utils.task_group import TaskGroup

    with DAG("d", schedule=None) as dag:
        a, b, c = (EmptyOperator(task_id=x) for x in "abc")
        with TaskGroup("g") as g:
            g1 = EmptyOperator(task_id="one")
            g2 = EmptyOperator(task_id="two")
            g1 >> g2
        a >> [b, c]
        [b, c] >> g
        d, e, f = (EmptyOperator(task_id=x) for x in "def")
        chain(g, [d, e], f)
        x, y = EmptyOperator(task_id="x"), EmptyOperator(task_id="y")
        cross_downstream([d, e], [x, y])
    assert dag.task_dict["g.one"].upstream_task_ids == {"b", "c"}
    assert dag.task_dict["g.two"].downstream_task_ids == {"d", "e"}
    assert f.upstream_task_ids == {"d", "e"}
    assert x.upstream_task_ids == {"d", "e"} and y.upstream_task_ids == {"d", "e"}


def test_default_args_fill_only_what_the_operator_takes() -> None:
    from airflow import DAG
    from airflow.operators.bash import BashOperator

    args = {"retries": 3, "retry_delay": timedelta(seconds=7), "cwd": "/tmp", "owner": "me", "not_a_param": 1}
    with DAG("d", default_args=args, schedule=None):
        t = BashOperator(task_id="t", bash_command="true", retries=1)
    assert (t.retries, t.retry_delay, t.cwd, t.owner) == (1, timedelta(seconds=7), "/tmp", "me")
    assert "not_a_param" not in t.other


def test_task_called_twice_gets_a_new_id_and_wires_xcomargs() -> None:
    from airflow.decorators import dag, task

    @task
    def one() -> int:
        return 1

    @task
    def add(x: int, y: int) -> int:
        return x + y

    @dag(schedule=None)
    def d() -> None:
        add(one(), one())

    built = d()
    assert set(built.task_dict) == {"one", "one__1", "add"}
    assert built.task_dict["add"].upstream_task_ids == {"one", "one__1"}


def test_duplicate_task_id_is_refused() -> None:
    from airflow import DAG
    from airflow.exceptions import AirflowException
    from airflow.operators.empty import EmptyOperator

    with DAG("d", schedule=None), pytest.raises(AirflowException, match="'t' has already been added"):
        EmptyOperator(task_id="t")
        EmptyOperator(task_id="t")


def test_any_airflow_path_resolves_to_the_same_object() -> None:
    from airflow.decorators import dag as dec_dag
    from airflow.operators.python import PythonOperator as p2
    from airflow.operators.python_operator import PythonOperator as p1
    from airflow.providers.standard.operators.python import PythonOperator as p3
    from airflow.sdk import dag as sdk_dag

    assert p1 is p2 is p3
    assert sdk_dag is dec_dag


def test_an_unknown_operator_is_a_refused_task_and_a_hook_raises_when_used() -> None:
    from airflow import DAG
    from airflow.exceptions import AirflowException
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from airflow.providers.postgres.operators.postgres import PostgresOperator

    with DAG("d", schedule=None) as dag:
        PostgresOperator(task_id="sql", sql="select 1", postgres_conn_id="pg")
    task = dag.task_dict["sql"]
    assert not task.runs_natively
    assert "PostgresOperator" in task.unsupported_reason and "airflow.providers.postgres" in task.unsupported_reason
    hook = PostgresHook(postgres_conn_id="pg")  # building one is fine (a DAG file may do it at import)
    with pytest.raises(AirflowException, match="PostgresHook.run"):
        hook.run("select 1")
