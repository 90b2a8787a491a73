"""Every trigger rule against every mix of upstream outcomes.

Upstream sets: ok+ok, ok+failed, ok+skipped, failed+failed, skipped+skipped, failed+skipped.
For each set, one EmptyOperator per trigger rule: its state is the rule's verdict.
"""

from __future__ import annotations

import pendulum

from airflow.exceptions import AirflowSkipException
from airflow.models.dag import DAG
from airflow.operators.empty import EmptyOperator
from airflow.operators.python import PythonOperator


def _ok():
    return "ok"


def _fail():
    raise ValueError("planned failure")


def _skip():
    raise AirflowSkipException("planned skip")


RULES = [
    "all_success",
    "all_failed",
    "all_done",
    "all_skipped",
    "one_success",
    "one_failed",
    "one_done",
    "none_failed",
    "none_failed_min_one_success",
    "none_skipped",
    "always",
]

SETS = {
    "ok_ok": ("ok", "ok"),
    "ok_failed": ("ok", "fail"),
    "ok_skipped": ("ok", "skip"),
    "failed_failed": ("fail", "fail"),
    "skipped_skipped": ("skip", "skip"),
    "failed_skipped": ("fail", "skip"),
}

CALLABLES = {"ok": _ok, "fail": _fail, "skip": _skip}

with DAG(
    dag_id="compat_trigger_rules",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
) as dag:
    for set_name, kinds in SETS.items():
        ups = [
            PythonOperator(task_id=f"{set_name}_up{i}_{kind}", python_callable=CALLABLES[kind])
            for i, kind in enumerate(kinds)
        ]
        for rule in RULES:
            ups >> EmptyOperator(task_id=f"{set_name}__{rule}", trigger_rule=rule)
