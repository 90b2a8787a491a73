"""`SubDagOperator` (Airflow 2, removed in Airflow 3) and the sub-DAGs it holds.

Airflow's DagBag registers each SubDagOperator's `subdag` as a DAG of its own (id `parent.child`,
the parent's file), so `airflow dags test FILE parent.child` runs it; rtstream's DAG bag does the
same (`subdags_of`). The operator itself creates the sub-DAG's run and waits for it as a sensor; under
`airflow dags test` nothing runs that run, so it waits until its timeout. rtstream refuses it at load
with the reason (use a TaskGroup, or run the sub-DAG by its id).

`airflow.example_dags.subdags.subdag.subdag` is the factory Airflow's own example imports from the
Airflow package; it is given here as Airflow 2.10.5 ships it, so that example loads without Airflow.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from rtstream.airflow.dag_model import DAG
from rtstream.airflow.operators import EmptyOperator
from rtstream.airflow.sensors import BaseSensorOperator
from rtstream.airflow.states import AirflowException


class SubDagOperator(BaseSensorOperator):
    ui_color = "#555"
    runs_natively: ClassVar[bool] = False
    unsupported_reason: ClassVar[str] = (
        "SubDagOperator (deprecated in Airflow 2, removed in 3) runs its sub-DAG as a run of its own and waits "
        "for it; rtstream does not run it: use a TaskGroup, or run the sub-DAG by its id (--dag PARENT.CHILD)")

    def __init__(self, *, subdag: DAG, session: Any = None, conf: dict[str, Any] | None = None,
                 propagate_skipped_state: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(subdag, DAG):
            raise AirflowException(f"task {self.task_id!r}: subdag must be a DAG, got {type(subdag).__name__}")
        parent = self.dag.dag_id if self.dag is not None else None
        if parent is not None and subdag.dag_id != f"{parent}.{kwargs['task_id']}":
            raise AirflowException(f"The subdag's dag_id should have the form '{{parent_dag_id}}.{{this_task_id}}'. "
                                   f"Expected '{parent}.{kwargs['task_id']}'; received '{subdag.dag_id}'.")
        self.subdag, self.conf, self.propagate_skipped_state = subdag, conf, propagate_skipped_state

    def execute(self, context: dict[str, Any]) -> Any:
        raise AirflowException(self.unsupported_reason)


def subdags_of(dags: list[DAG]) -> list[DAG]:
    """Every sub-DAG of `dags`, depth first (Airflow's DAG.subdags)."""
    out: list[DAG] = []
    for dag in dags:
        for task in dag.tasks:
            sub = getattr(task, "subdag", None)
            if isinstance(task, SubDagOperator) and isinstance(sub, DAG):
                sub.parent_dag = dag  # type: ignore[attr-defined]  # as Airflow's DagBag marks it
                out += [sub, *subdags_of([sub])]
    return out


def example_subdag(parent_dag_name: str, child_dag_name: str, args: dict[str, Any]) -> DAG:
    """airflow/example_dags/subdags/subdag.py of Airflow 2.10.5 (Apache License 2.0)."""
    dag_subdag = DAG(dag_id=f"{parent_dag_name}.{child_dag_name}", default_args=args,
                     start_date=datetime(2021, 1, 1, tzinfo=UTC), catchup=False, schedule="@daily")
    for i in range(5):
        EmptyOperator(task_id=f"{child_dag_name}-task-{i + 1}", default_args=args, dag=dag_subdag)
    return dag_subdag
