"""Task and DAG callbacks in a scheduled run (as a deployment runs them: the scheduler, a worker per
try, the DAG processor for the DAG's callbacks), to compare with `rtstream run --dags`. One run
(2024-06-01). Each callback appends one JSON line to the file named by $COMPAT_CALLBACKS_FILE: which
callback, the DAG, run and task instance it got (try_number, state at the time), the type of
context["exception"], the run's state and, for a DAG callback, `reason`."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pendulum

from airflow import DAG
from airflow.exceptions import AirflowSkipException
from airflow.operators.python import PythonOperator

DAY = pendulum.datetime(2024, 6, 1, tz="UTC")


def _value(state):
    return getattr(state, "value", state)


def note(name):
    def callback(context):
        ti, exc, run = context["ti"], context.get("exception"), context.get("dag_run")
        line = {"callback": name, "dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id,
                "map_index": ti.map_index, "try_number": ti.try_number, "state": _value(ti.state),
                "exception": type(exc).__name__ if exc is not None else None,
                "run_state": _value(run.state) if run is not None else None}
        if "reason" in context:
            line["reason"] = context["reason"]
        with open(os.environ["COMPAT_CALLBACKS_FILE"], "a") as out:
            out.write(json.dumps(line, sort_keys=True) + "\n")

    callback.__name__ = name
    return callback


EVERY = {"on_execute_callback": note("on_execute"), "on_success_callback": note("on_success"),
         "on_retry_callback": note("on_retry"), "on_failure_callback": note("on_failure"),
         "on_skipped_callback": note("on_skipped")}


def ok():
    return "ok"


def retry_then_ok(ti=None):
    if ti.try_number < 2:
        raise ValueError("first try fails on purpose")
    return ti.try_number


def skips():
    raise AirflowSkipException("skipped on purpose")


def fails():
    raise KeyError("fails on purpose")


with DAG("compat_callbacks_scheduled", schedule="@daily", start_date=DAY, end_date=DAY, catchup=True,
         on_success_callback=note("dag_on_success"), on_failure_callback=note("dag_on_failure"),
         default_args={"retry_delay": timedelta(seconds=1)}) as compat_callbacks_scheduled:
    PythonOperator(task_id="ok", python_callable=ok, **EVERY)
    PythonOperator(task_id="retry_then_ok", python_callable=retry_then_ok, retries=1, **EVERY)
    PythonOperator(task_id="skips_itself", python_callable=skips, **EVERY)
    PythonOperator(task_id="fails", python_callable=fails, **EVERY) >> \
        PythonOperator(task_id="after_fails", python_callable=ok, **EVERY)
