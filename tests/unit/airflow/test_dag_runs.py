"""Runs of the fixture DAGs (tests/fixtures/dags) in-process: task instance states, tries and XComs as
Airflow 2.10's `dags test` gives them."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rtstream.airflow.dag_run import DagRun, RunResult
from rtstream.airflow.dagbag import load

DAGS = Path(__file__).resolve().parents[2] / "fixtures" / "dags"
AT = datetime(2024, 3, 5, 7, 30, tzinfo=UTC)
pytestmark = pytest.mark.usefixtures("stand_in")


def run(file: str, dag_id: str | None = None) -> RunResult:
    bag = load(DAGS / file)
    assert bag.import_errors == {}
    dag = bag.dags[dag_id] if dag_id else next(iter(bag.dags.values()))
    return asyncio.run(DagRun(dag, AT).run())


def states(result: RunResult) -> dict[str, tuple[str | None, int]]:
    return {ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): (ti.state, ti.try_number)
            for ti in result.task_instances}


def test_taskflow_chain_passes_values_and_multiple_outputs() -> None:
    r = run("taskflow_chain.py")
    assert r.run_state == "success"
    assert r.xcoms.of("transform", -1) == {"return_value": 3}
    assert r.xcoms.of("load", -1) == {"total": 30, "a_again": 1, "return_value": {"total": 30, "a_again": 1}}


def test_branch_skips_the_other_way_and_the_join_runs() -> None:
    r = run("branching.py")
    assert states(r) == {"choose": ("success", 1), "left": ("success", 1), "right": ("skipped", 0),
                         "after_right": ("skipped", 0), "join": ("success", 1), "pick": ("success", 1),
                         "b1": ("skipped", 0), "b2": ("success", 1)}


def test_short_circuit_skips_all_downstream_or_only_the_next() -> None:
    s = states(run("short_circuit.py"))
    assert s["s1"][0] == s["s2"][0] == "skipped"  # ignore_downstream_trigger_rules (default): all of it
    assert (s["g1"][0], s["g2"][0]) == ("skipped", "success")  # only the next; g2's all_done runs it
    assert s["after_go"][0] == "success"


def test_every_trigger_rule_after_a_success_a_failure_and_a_skip() -> None:
    s = {k[len("rule_"):]: v[0] for k, v in states(run("trigger_rules.py")).items() if k.startswith("rule_")}
    assert s == {"all_success": "upstream_failed", "all_failed": "skipped", "all_done": "success",
                 "all_skipped": "skipped", "one_success": "success", "one_failed": "success",
                 "one_done": "success", "none_failed": "upstream_failed",
                 "none_failed_min_one_success": "upstream_failed", "none_skipped": "skipped", "always": "success"}


def test_retries_then_success_fail_now_and_timeout() -> None:
    started = time.monotonic()
    r = run("retries.py")
    s = states(r)
    assert s["flaky"] == ("success", 3) and r.xcoms.of("flaky", -1) == {"return_value": 3}
    assert s["hopeless"] == ("failed", 2)  # retries=1 on the task beats default_args' 2
    assert s["fail_now"] == ("failed", 1)  # AirflowFailException: no retry
    assert s["too_slow"] == ("failed", 1)
    assert time.monotonic() - started >= 0.4  # flaky waited its retry_delay twice, as dags test does
    assert r.run_state == "failed" and sorted(r.failed_tasks) == ["fail_now", "hopeless", "too_slow"]


def test_a_failure_makes_downstream_upstream_failed() -> None:
    r = run("failing.py")
    assert states(r) == {"first": ("success", 1), "second": ("failed", 1), "third": ("upstream_failed", 0),
                         "fourth": ("upstream_failed", 0)}
    assert r.run_state == "failed"


def test_mapping_expands_reduces_and_skips_an_empty_expansion() -> None:
    r = run("mapping.py")
    s = states(r)
    assert [r.xcoms.of("times", i)["return_value"] for i in range(3)] == [2, 4, 6]
    assert r.xcoms.of("total", -1) == {"return_value": 12}
    assert [r.xcoms.of("times_literal", i)["return_value"] for i in range(2)] == [50, 60]
    assert s["times_none"] == ("skipped", 0)
    assert [r.xcoms.of("echo", i)["return_value"] for i in range(2)] == ["a", "b"]


def test_groups_loops_and_two_dags_in_a_file() -> None:
    r = run("groups_and_loops.py")
    assert [r.xcoms.of(f"squares.square_{i}", -1)["return_value"] for i in range(5)] == [0, 1, 4, 9, 16]
    assert r.run_state == "success"
    assert sorted(load(DAGS / "two_dags.py").dags) == ["first_of_two", "second_of_two"]


def test_templates_context_and_cron_data_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_FIXTURE_VAR", "vv")
    r = run("templates.py")
    got = r.xcoms.of("report", -1)["return_value"]
    assert got["stamp"] == "20240305/eu/7/acme/2024-03-06/vv"
    assert (got["ds"], got["ts"]) == ("2024-03-05", "2024-03-05T07:30:00+00:00")
    assert (got["start"], got["end"]) == ("2024-03-04 06:00:00+00:00", "2024-03-05 06:00:00+00:00")
    assert got["params"] == {"region": "eu", "limit": 7}
    assert r.xcoms.of("from_file", -1)["return_value"] == "select * from t where day = '2024-03-05' and region = 'eu'"


def test_independent_tasks_run_at_once() -> None:
    started = time.monotonic()
    r = run("async_and_parallel.py")
    assert r.xcoms.of("gather", -1)["return_value"] == [1, 2, 300, 400]
    assert time.monotonic() - started < 1.8  # four 0.5 s tasks, not 2 s in a row
