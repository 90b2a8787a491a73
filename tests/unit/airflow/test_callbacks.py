"""Task and DAG callbacks, called as Airflow 2.10 calls them (TaskInstance._run_raw_task,
handle_failure, _run_finished_callback; DagRun.update_state -> DAG.handle_callback): after the state
is set, with the try's context (`exception` on failure and retry), `default_args` inherited, a list
called in order; a callback that raises (or calls sys.exit) is logged and changes nothing."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rtstream.airflow.dag_run import DagRun, RunResult
from rtstream.airflow.dagbag import load

DAGS = Path(__file__).resolve().parents[2] / "fixtures" / "dags_callbacks"
AT = datetime(2024, 3, 5, 7, 30, tzinfo=UTC)
RUN_ID = f"manual__{AT.isoformat()}"
pytestmark = pytest.mark.usefixtures("stand_in")


async def _run_and_call_back(run: DagRun) -> RunResult:
    result = await run.run()
    await run.call_back(result)
    return result


def run(dag_id: str) -> tuple[RunResult, list[tuple[Any, ...]]]:
    bag = load(DAGS / "callbacks.py")
    assert bag.import_errors == {}
    dag = bag.dags[dag_id]
    calls: list[tuple[Any, ...]] = dag.other["on_success_callback"].__globals__["CALLS"]
    calls.clear()
    return asyncio.run(_run_and_call_back(DagRun(dag, AT))), calls


def test_each_task_callback_kind_with_its_context(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "rtstream.airflow")
    result, calls = run("callbacks")
    states = {ti.task_id: (ti.state, ti.try_number) for ti in result.task_instances}
    # the callbacks that raise changed no state
    assert states == {"good": ("success", 1), "retried": ("success", 2), "bad": ("failed", 1),
                      "skipped": ("skipped", 1), "after_bad": ("upstream_failed", 0)}
    assert result.run_state == "failed"
    ds = "2024-03-05"
    by_task: dict[str, list[tuple[Any, ...]]] = {}
    for c in calls:
        if c[0].startswith("dag_"):
            continue
        by_task.setdefault(c[1], []).append(c[:6])
    assert by_task["good"] == [("execute", "good", "running", 1, None, None),
                               ("success", "good", "success", 1, None, None)]
    assert by_task["retried"] == [("execute", "retried", "running", 1, None, None),
                                  ("retry", "retried", "up_for_retry", 1, "ValueError", "try 1 fails"),
                                  ("execute", "retried", "running", 2, None, None),
                                  ("success", "retried", "success", 2, None, None)]
    assert by_task["bad"] == [("execute", "bad", "running", 1, None, None),
                              ("failure", "bad", "failed", 1, "ValueError", "no luck")]
    # on_skipped_callback for the task's own AirflowSkipException, then on_success_callback too, with the
    # state skipped: Airflow 2.10.5 does (tests/compat constructs/compat_callbacks, skips_itself)
    assert by_task["skipped"] == [("execute", "skipped", "running", 1, None, None),
                                  ("skipped", "skipped", "skipped", 1, None, None),
                                  ("success", "skipped", "skipped", 1, None, None)]
    # upstream_failed is set by the trigger rule: no try, no callback (as in Airflow)
    assert "after_bad" not in by_task
    assert all(c[7:] == (ds, RUN_ID) for c in calls)
    # the DAG's failure callback, once, with the reason; its second callback raised and was logged
    dag_calls = [c for c in calls if c[0].startswith("dag_")]
    assert [(c[0], c[6]) for c in dag_calls] == [("dag_failure", "task_failure")]
    assert dag_calls[0][1:3] == ("after_bad", "upstream_failed")  # the context of the run's last task instance
    text = caplog.text
    assert "error in on_success_callback callback at index 0 (boom): RuntimeError: callback exploded" in text
    assert "error in on_success_callback callback at index 2 (bye): SystemExit: 3" in text
    assert "error in on_failure_callback callback at index 1 (boom)" in text
    assert "error in DAG on_failure_callback callback at index 1 (boom)" in text


def test_dag_success_callback_with_reason_success(caplog: pytest.LogCaptureFixture) -> None:
    result, calls = run("callbacks_ok")
    assert result.run_state == "success"
    assert "error in on_success_callback callback at index 0 (str): TypeError: 'str' object is not callable" \
        in caplog.text
    assert [(c[0], c[6], c[8]) for c in calls] == [("dag_success", "success", RUN_ID)]
    assert calls[0][1] == "second"  # the context of the run's last task instance


def test_callbacks_under_dags_test_cli(tmp_path: Path) -> None:
    """`rtstream dags test`: the DAG's failure callback runs, the exit code is the run's (1)."""
    import subprocess
    import sys

    dag = tmp_path / "cb.py"
    marker = tmp_path / "marker.txt"
    dag.write_text(
        "from datetime import datetime\n"
        "from airflow import DAG\n"
        "from airflow.operators.python import PythonOperator\n"
        f"MARK = {str(marker)!r}\n"
        "def note(what):\n"
        "    def cb(context):\n"
        "        with open(MARK, 'a') as f:\n"
        "            f.write(f\"{what} {context['ti'].task_id} {context.get('reason')} \"\n"
        "                    f\"{type(context.get('exception')).__name__}\\n\")\n"
        "    return cb\n"
        "def fail():\n"
        "    raise ValueError('x')\n"
        "with DAG('cb', start_date=datetime(2024, 1, 1), schedule=None,\n"
        "         on_failure_callback=note('dag_failure')) as d:\n"
        "    PythonOperator(task_id='t', python_callable=fail, on_failure_callback=note('task_failure'))\n")
    done = subprocess.run([sys.executable, "-m", "rtstream", "dags", "test", str(dag), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert marker.read_text().splitlines() == ["task_failure t None ValueError",
                                               "dag_failure t task_failure NoneType"]


def test_sla_is_noted_once_per_dag_at_load(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "slas.py").write_text(
        "from datetime import datetime, timedelta\n"
        "from airflow import DAG\n"
        "from airflow.operators.empty import EmptyOperator\n"
        "with DAG('with_sla', start_date=datetime(2024, 1, 1), schedule=None,\n"
        "         default_args={'sla': timedelta(hours=1)}, sla_miss_callback=print):\n"
        "    EmptyOperator(task_id='b') >> EmptyOperator(task_id='a')\n"
        "with DAG('no_sla', start_date=datetime(2024, 1, 1), schedule=None):\n"
        "    EmptyOperator(task_id='c')\n")
    caplog.set_level(logging.INFO, "rtstream.airflow")
    bag = load(tmp_path)
    assert sorted(bag.dags) == ["no_sla", "with_sla"]
    notes = [r.getMessage() for r in caplog.records if "sla is not acted on" in r.getMessage()]
    assert notes == ["DAG with_sla: sla is not acted on (tasks a, b): rtstream does not check SLAs nor call "
                     "sla_miss_callback"]


SLOW_BRANCH = """
import time
from datetime import datetime
from airflow import DAG
from airflow.operators.python import BranchPythonOperator, PythonOperator

def slow(context):
    time.sleep(1.5)

with DAG("slow_branch", start_date=datetime(2024, 1, 1), schedule=None) as dag:
    pick = BranchPythonOperator(task_id="pick", python_callable=lambda: "taken", on_success_callback=slow)
    pick >> [PythonOperator(task_id="taken", python_callable=lambda: 1),
             PythonOperator(task_id="not_taken", python_callable=lambda: 2)]
    fails = PythonOperator(task_id="fails", python_callable=lambda: 1 / 0, on_failure_callback=slow)
    fails >> PythonOperator(task_id="after_fails", python_callable=lambda: 3)
    # ends while the callbacks above still run: the run looks at what may start next then
    PythonOperator(task_id="quick", python_callable=lambda: time.sleep(0.3))
"""


def test_downstream_waits_for_the_upstream_callbacks(tmp_path: Path) -> None:
    """A task instance counts as done for its downstream once its try returned, callbacks included
    (Airflow commits the state after on_success_callback): a branch whose success callback is slow
    still skips the branch not taken, which never runs (compat_callbacks once ran `not_taken`)."""
    (tmp_path / "slow.py").write_text(SLOW_BRANCH)
    bag = load(tmp_path)
    assert bag.import_errors == {}
    result = asyncio.run(DagRun(bag.dags["slow_branch"], AT).run())
    states = {ti.task_id: (ti.state, ti.try_number) for ti in result.task_instances}
    assert states == {"pick": ("success", 1), "taken": ("success", 1), "not_taken": ("skipped", 0),
                      "fails": ("failed", 1), "after_fails": ("upstream_failed", 0), "quick": ("success", 1)}
    assert result.xcoms.of("not_taken", -1) == {} and result.xcoms.of("taken", -1) == {"return_value": 1}


ONE_SUCCESS = """
import threading
from datetime import datetime
from airflow import DAG
from airflow.operators.python import PythonOperator

STARTED = threading.Event()

def waits_for_join():
    if not STARTED.wait(10):
        raise RuntimeError("join did not start while this upstream ran")

with DAG("one_success", start_date=datetime(2024, 1, 1), schedule=None) as dag:
    quick = PythonOperator(task_id="quick", python_callable=lambda: 1)
    slow = PythonOperator(task_id="slow", python_callable=waits_for_join)
    join = PythonOperator(task_id="join", python_callable=STARTED.set, trigger_rule="one_success")
    [quick, slow] >> join
"""


def test_a_running_upstream_does_not_hold_a_one_success_join(tmp_path: Path) -> None:
    """Only an upstream whose state is set but whose try has not returned (its callbacks) holds the
    downstream: one still running does not, and `one_success` starts on the first success, as in
    Airflow (the join here must start while `slow` still runs, else `slow` fails)."""
    (tmp_path / "join.py").write_text(ONE_SUCCESS)
    bag = load(tmp_path)
    result = asyncio.run(DagRun(bag.dags["one_success"], AT).run())
    assert {ti.task_id: ti.state for ti in result.task_instances} == {
        "quick": "success", "slow": "success", "join": "success"}
