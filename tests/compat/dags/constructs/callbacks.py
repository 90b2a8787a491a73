"""Task and DAG callbacks. Every callback appends one JSON line to `callbacks.jsonl` in the cwd (the
recording keeps those lines): which callback, the task instance it got (task_id, map_index,
try_number, state at the time), the type of context["exception"], the run's state and, for a DAG
callback, `reason`.

compat_callbacks (succeeds): on_execute and on_success; a retry then success; a branch that skips a
task (no callback: it never runs); AirflowSkipException (on_skipped); a mapped task; a success
callback list whose first callback raises; an on_execute callback that raises; the DAG's
on_success_callback.
compat_callbacks_failed (fails): a callback list from default_args; a retry then failure; an
on_failure callback that raises; upstream_failed downstream (no callback); the DAG's
on_failure_callback with its reason."""

from __future__ import annotations

import json
from datetime import timedelta

import pendulum

from airflow.decorators import dag, task
from airflow.exceptions import AirflowSkipException


def _value(state):
    return getattr(state, "value", state)


def note(name):
    """A callback that appends what it was given to callbacks.jsonl (in the cwd)."""

    def callback(context):
        ti, exc, run = context["ti"], context.get("exception"), context.get("dag_run")
        line = {"callback": name, "task_id": ti.task_id, "map_index": ti.map_index,
                "try_number": ti.try_number, "state": _value(ti.state),
                "exception": type(exc).__name__ if exc is not None else None,
                "run_state": _value(run.state) if run is not None else None}
        if "reason" in context:
            line["reason"] = context["reason"]
        with open("callbacks.jsonl", "a") as out:
            out.write(json.dumps(line, sort_keys=True) + "\n")

    callback.__name__ = name
    return callback


def raises(context):
    raise RuntimeError("a callback that raises on purpose")


EVERY = {"on_execute_callback": note("on_execute"), "on_success_callback": note("on_success"),
         "on_retry_callback": note("on_retry"), "on_failure_callback": note("on_failure"),
         "on_skipped_callback": note("on_skipped")}


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
     on_success_callback=note("dag_on_success"), on_failure_callback=note("dag_on_failure"))
def compat_callbacks():
    @task(**EVERY)
    def ok() -> str:
        return "ok"

    @task(retries=2, retry_delay=timedelta(seconds=1), **EVERY)
    def retry_then_ok(ti=None) -> int:
        if ti.try_number < 2:
            raise ValueError("first try fails on purpose")
        return ti.try_number

    @task.branch(**EVERY)
    def pick() -> str:
        return "taken"

    @task(**EVERY)
    def taken() -> str:
        return "taken"

    @task(**EVERY)
    def not_taken() -> str:
        return "never runs"

    @task(**EVERY)
    def skips_itself() -> None:
        raise AirflowSkipException("skipped on purpose")

    @task(**EVERY)
    def mapped(x: int) -> int:
        return x * 10

    @task(on_success_callback=[raises, note("on_success_after_raise")])
    def success_callback_raises() -> str:
        return "still success"

    @task(on_execute_callback=raises, on_success_callback=note("on_success"))
    def execute_callback_raises() -> str:
        return "still runs"

    ok()
    retry_then_ok()
    pick() >> [taken(), not_taken()]
    skips_itself()
    mapped.expand(x=[1, 2])
    success_callback_raises()
    execute_callback_raises()


compat_callbacks()


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
     on_success_callback=note("dag_on_success"), on_failure_callback=[raises, note("dag_on_failure")],
     default_args={"on_failure_callback": [note("default_failure_1"), note("default_failure_2")],
                   "on_retry_callback": note("default_retry"), "retries": 1,
                   "retry_delay": timedelta(seconds=1)})
def compat_callbacks_failed():
    @task
    def retry_then_fail(ti=None) -> None:
        raise KeyError(f"try {ti.try_number} fails on purpose")

    @task(retries=0, on_failure_callback=[raises, note("on_failure_after_raise")])
    def failure_callback_raises() -> None:
        raise TypeError("fails on purpose")

    @task(on_success_callback=note("on_success"))
    def succeeds() -> str:
        return "fine"

    @task(on_execute_callback=note("on_execute"))
    def downstream(value) -> None:
        return None

    downstream(retry_then_fail())
    failure_callback_raises()
    succeeds()


compat_callbacks_failed()
