"""Triggered DAG runs through the real `rtstream run --dags DIR`: `POST /api/dags/<id>/dagRuns` (Airflow's
REST API body and answers) and `rtstream dags trigger`; the run's id, type, conf and params as the
tasks saw them; refusals (401, 404, 409, 400) and the grid showing the run."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.dag_grid_support import TOKEN, call
from tests.e2e.dag_trigger_support import TASKS, TriggerSetup
from tests.support import wait_until


def test_trigger_over_the_api_and_the_cli(tmp_path: Path) -> None:
    setup = TriggerSetup(tmp_path)
    setup.release.touch()  # slow does not wait here
    with setup.daemon() as d:
        setup.wait_up()
        at = "2026-03-01T10:00:00+00:00"
        code, run = setup.trigger("triggered", {"conf": {"n": 5, "who": "api"}, "logical_date": at})
        assert code == 200, run
        assert run["dag_run_id"] == f"manual__{at}" and run["run_type"] == "manual" and run["state"] == "queued"
        assert run["logical_date"] == at and run["conf"] == {"n": 5, "who": "api"} and run["external_trigger"] is True
        # schedule=None: Airflow's manual data interval is the logical date itself
        assert run["data_interval_start"] == at and run["data_interval_end"] == at
        wait_until(lambda: setup.run_state(f"manual__{at}") == "success", 60, what="the triggered run succeeded")

        # the CLI, with a naive logical date (UTC) and a conf; then a run id of its own
        done = setup.cli("triggered", "--conf", '{"who": "cli"}', "--logical-date", "2026-03-02T00:00:00")
        assert done.returncode == 0, done.stderr
        assert "manual__2026-03-02T00:00:00+00:00" in done.stdout and "queued" in done.stdout
        done = setup.cli("triggered", "--run-id", "my_run.1", "--logical-date", "2026-03-03T00:00:00+00:00")
        assert done.returncode == 0, done.stderr
        wait_until(lambda: [r[3] for r in setup.runs()] == ["success"] * 3, 60, what="three runs succeeded")
        assert [(r[0], r[2]) for r in setup.runs()] == [(f"manual__{at}", "manual"),
                                                        ("manual__2026-03-02T00:00:00+00:00", "manual"),
                                                        ("my_run.1", "manual")]

        # what the tasks saw: each task once per run, conf merged into params as Airflow's process_params
        lines = [r for r in setup.lines() if r["dag"] == "triggered"]
        dones = Counter((r["run_id"], r["task"]) for r in lines if r["event"] == "done")
        assert dones == Counter({(rid, t): 1 for rid in (f"manual__{at}", "manual__2026-03-02T00:00:00+00:00",
                                                         "my_run.1") for t in TASKS})
        api = [r for r in lines if r["run_id"] == f"manual__{at}"]
        assert all(r["conf"] == {"n": 5, "who": "api"} and r["params"] == {"greeting": "hi", "n": 5, "who": "api"}
                   and r["run_type"] == "manual" and r["external"] is True and r["ld"] == at for r in api)
        cli = [r for r in lines if r["run_id"] == "manual__2026-03-02T00:00:00+00:00"]
        assert all(r["params"] == {"greeting": "hi", "n": 1, "who": "cli"} for r in cli)
        assert all(r["conf"] == {} and r["params"] == {"greeting": "hi", "n": 1}
                   for r in lines if r["run_id"] == "my_run.1")

        # the grid shows them, with their XComs
        code, grid = call(f"{setup.base}/api/dags/triggered/runs")
        assert code == 200 and [r["run_type"] for r in grid["runs"]] == ["manual"] * 3
        assert all(r["task_instances"]["last"] == {"state": "success", "tries": 1} for r in grid["runs"])
        code, one = call(f"{setup.base}/api/dags/triggered/runs/my_run.1")
        assert code == 200 and one["conf"] == {}
        assert [ti["xcom"] for ti in one["task_instances"]] == [{"return_value": f"{t}@my_run.1"} for t in TASKS]

        # refusals: each one line, nothing created
        code, doc = setup.trigger("triggered", {"logical_date": at})
        assert code == 409 and doc["error"].startswith("DAGRun with DAG ID: 'triggered' and DAGRun logical date: "
                                                       "'2026-03-01 10:00:00+00:00' already exists"), doc
        code, doc = setup.trigger("triggered", {"dag_run_id": "my_run.1"})
        assert code == 409 and doc["error"] == "DAGRun with DAG ID: 'triggered' and DAGRun ID: 'my_run.1' already exists"
        done = setup.cli("triggered", "--run-id", "my_run.1")
        assert done.returncode == 1 and "409" in done.stderr and "already exists" in done.stderr
        assert "Traceback" not in done.stderr
        code, doc = setup.trigger("no_such_dag", {})
        assert code == 404 and "no_such_dag" in doc["error"]
        for odd in ["..%2F..%2Fetc", "%3Cscript%3E", "x" * 300, "%00"]:
            code, doc = setup.trigger(odd, {})
            assert code == 404 and "not found" in doc["error"], (odd, doc)
        done = setup.cli("../../x y")
        assert done.returncode == 1 and "404" in done.stderr
        big = urllib.request.Request(f"{setup.base}/api/dags/triggered/dagRuns", method="POST",
                                     data=b'{"conf": {"big": "' + b"x" * 3_000_000 + b'"}}',
                                     headers={"Authorization": f"Bearer {TOKEN}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(big, timeout=10)
        assert refused.value.code == 413  # bounded by the admin server's body limit, nothing created
        code, doc = setup.trigger("triggered", {}, token=None)
        assert code == 401
        done = setup.cli("triggered", token=None)
        assert done.returncode == 1 and "401" in done.stderr and "RTSTREAM_ADMIN_TOKEN" in done.stderr
        done = setup.cli("triggered", token="wrong")
        assert done.returncode == 1 and "401" in done.stderr
        for raw, says in [(b"{not json", "must be JSON"), (b"[1, 2]", "must be a JSON object"),
                          (b'{"conf": [1]}', "conf must be a JSON object"),
                          (b'{"conf": "{bad"}', "conf: a string must hold a JSON object"),
                          (b'{"logical_date": "2026-03-04T00:00:00"}', "naive datetime is disallowed"),
                          (b'{"logical_date": "yesterday"}', "is not an ISO-8601 date-time"),
                          (b'{"logical_date": 5}', "logical_date must be an ISO-8601"),
                          (b'{"dag_run_id": "a/b"}', "dag_run_id: 'a/b' is invalid"),
                          (b'{"dag_run_id": ""}', "dag_run_id must be a non-empty string"),
                          (b'{"data_interval_start": "2026-01-01T00:00:00+00:00"}', "must be specified together"),
                          (b'{"logical_date": "2026-01-01T00:00:00+00:00", "execution_date": '
                           b'"2026-01-02T00:00:00+00:00"}', "conflicts"),
                          (b'{"nope": 1}', "unknown field(s) nope"),
                          (b'{"conf": ' + b"[" * 5000 + b"]" * 5000 + b"}", "must be JSON"),
                          (b"\xff\xfe", "must be JSON")]:
            code, doc = setup.trigger("triggered", raw=raw)
            assert code == 400 and says in doc["error"], (raw[:40], doc)
        for bad, says in [(["--conf", "[1]"], "--conf: must be a JSON object"),
                          (["--conf", "{x"], "--conf: not JSON"),
                          (["--logical-date", "soon"], "--logical-date: 'soon' is not ISO-8601")]:
            done = setup.cli("triggered", *bad)
            assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(setup.runs()) == 3
        assert TOKEN not in d.stderr
    unreachable = setup.cli("triggered")
    assert unreachable.returncode == 2 and "cannot reach the daemon's admin server" in unreachable.stderr


def test_a_triggered_run_takes_a_scheduled_interval_s_logical_date(tmp_path: Path) -> None:
    """Airflow's scheduler creates no scheduled run at a logical date a triggered run has, and goes on
    with the next interval; a trigger at a logical date a scheduled run has is a 409."""
    setup = TriggerSetup(tmp_path)
    setup.release.touch()
    start = int(time.time()) + 3
    setup.env["RTSTREAM_TRIG_EVERY_START"] = str(start)
    first = datetime.fromtimestamp(start, tz=UTC)
    lds = [(first + timedelta(seconds=k)).isoformat() for k in (0, 2, 4, 6, 8)]
    with setup.daemon():
        setup.wait_up()
        code, run = setup.trigger("every2s", {"logical_date": lds[2]})
        assert code == 200 and run["data_interval_start"] == lds[1] and run["data_interval_end"] == lds[2], run
        wait_until(lambda: len(setup.runs("every2s")) == 5 and all(r[3] == "success" for r in setup.runs("every2s")),
                   60, what="every interval of every2s ran")
        got = [(r[1], r[2]) for r in setup.runs("every2s")]
        assert got == [(lds[0], "scheduled"), (lds[1], "scheduled"), (lds[2], "manual"), (lds[3], "scheduled"),
                       (lds[4], "scheduled")]
        code, doc = setup.trigger("every2s", {"logical_date": lds[0]})
        assert code == 409 and f"run scheduled__{lds[0]}" in doc["error"]
        dones = Counter(r["run_id"] for r in setup.lines() if r["event"] == "done" and r["dag"] == "every2s")
        assert dones == Counter({f"manual__{lds[2]}": 1, **{f"scheduled__{ld}": 1 for ld in lds if ld != lds[2]}})


def test_trigger_dag_run_operator_waits_for_the_triggered_run(tmp_path: Path) -> None:
    """TriggerDagRunOperator in the daemon: the target's run is created in the store (manual, templated
    conf, its run id), the controller waits until it succeeded, then goes on with the XComs Airflow
    pushes; a failed target fails the controller's task (failed_states); reset_dag_run clears and
    runs the target's run again."""
    setup = TriggerSetup(tmp_path, files=("controller.py",))
    with setup.daemon() as d:
        setup.wait_up()
        code, run = setup.trigger("controller", {"conf": {"value": "v1", "child_at": "2026-05-01T00:00:00+00:00"}})
        assert code == 200, run
        controller_run = run["dag_run_id"]
        wait_until(lambda: setup.run_state(controller_run, "controller") in ("success", "failed"), 60,
                   what="the controller's run ended")
        assert setup.run_state(controller_run, "controller") == "success", d.stderr[-3000:]
        assert setup.runs("target") == [("child__v1", "2026-05-01T00:00:00+00:00", "manual", "success")]
        lines = setup.lines()
        work = [r for r in lines if r["dag"] == "target"]
        assert work == [{"dag": "target", "task": "work", "event": "done", "run_id": "child__v1", "run_type": "manual",
                         "conf": {"value": "v1", "fail": "", "from": controller_run},
                         "params": {"value": "v1", "fail": "", "from": controller_run},
                         "ld": "2026-05-01T00:00:00+00:00"}]
        (after,) = [r for r in lines if r["dag"] == "controller"]
        assert after["trigger_run_id"] == "child__v1" and after["trigger_ld"] == "2026-05-01T00:00:00+00:00"
        # the waiting task ended after the target's run: its try is kept with the target's end before it
        code, one = call(f"{setup.base}/api/dags/controller/runs/{controller_run}")
        trig = next(ti for ti in one["task_instances"] if ti["task_id"] == "trigger")
        assert trig["state"] == "success" and trig["xcom"] == {"trigger_logical_date_iso": "2026-05-01T00:00:00+00:00",
                                                               "trigger_run_id": "child__v1"}
        code, target_run = call(f"{setup.base}/api/dags/target/runs/child__v1")
        assert target_run["end_date"] <= trig["tries"][-1]["end_date"]

        # the target fails: the controller's task fails (failed_states), `after` is upstream_failed
        code, run = setup.trigger("controller", {"conf": {"value": "v2", "fail": "yes",
                                                          "child_at": "2026-05-02T00:00:00+00:00"}})
        second = run["dag_run_id"]
        wait_until(lambda: setup.run_state(second, "controller") in ("success", "failed"), 60, what="run 2 ended")
        assert setup.run_state(second, "controller") == "failed"
        assert setup.run_state("child__v2", "target") == "failed"
        code, one = call(f"{setup.base}/api/dags/controller/runs/{second}")
        states = {ti["task_id"]: ti["state"] for ti in one["task_instances"]}
        assert states == {"trigger": "failed", "after": "upstream_failed"}
        trig = next(ti for ti in one["task_instances"] if ti["task_id"] == "trigger")
        assert any("target failed with failed states failed" in line for line in trig["tries"][-1]["log"])

        # the same run id again with reset_dag_run: the target's run is cleared and runs again
        code, run = setup.trigger("controller", {"conf": {"value": "v1", "child_at": "2026-05-01T00:00:00+00:00"},
                                                 "logical_date": "2026-06-01T00:00:00+00:00"})
        third = run["dag_run_id"]
        wait_until(lambda: setup.run_state(third, "controller") in ("success", "failed"), 60, what="run 3 ended")
        assert setup.run_state(third, "controller") == "success"
        assert [r[0] for r in setup.runs("target")] == ["child__v1", "child__v2"]
        work = [r for r in setup.lines() if r["dag"] == "target" and r["run_id"] == "child__v1"]
        assert len(work) == 2  # ran again after the reset, in the same run


def _tis(setup: TriggerSetup, dag_id: str, run_id: str) -> dict[str, dict]:
    code, doc = call(f"{setup.base}/api/dags/{dag_id}/runs/{run_id}")
    assert code == 200, doc
    return {ti["task_id"]: ti for ti in doc["task_instances"]}


def test_external_task_sensor_waits_for_the_run_at_its_logical_date(tmp_path: Path) -> None:
    """ExternalTaskSensor in the daemon: waits (no worker thread held) until the external task, task
    group and DAG run at the same logical date succeeded; failed_states fails it (its downstream
    upstream_failed); a run that is never there times out (soft_fail: skipped)."""
    setup = TriggerSetup(tmp_path, files=("sensing.py",))
    ok, bad = "2026-07-01T00:00:00+00:00", "2026-07-02T00:00:00+00:00"
    with setup.daemon():
        setup.wait_up()
        for dag_id, at, conf in [("waiter", ok, {}), ("upstream", ok, {}), ("waiter", bad, {}),
                                 ("upstream", bad, {"fail": True}), ("late_waiter", ok, {})]:
            code, run = setup.trigger(dag_id, {"logical_date": at, "conf": conf})
            assert code == 200, run
        # the waiters wait: gate has not finished (its release file is not there)
        wait_until(lambda: _tis(setup, "waiter", f"manual__{ok}")["on_task"]["state"] == "running", 30,
                   what="the sensor poking")
        assert setup.run_state(f"manual__{ok}", "waiter") == "running"
        setup.release.touch()
        for dag_id, at in [("waiter", ok), ("waiter", bad), ("upstream", ok), ("upstream", bad), ("late_waiter", ok)]:
            wait_until(lambda: setup.run_state(f"manual__{at}", dag_id) in ("success", "failed"), 60,  # noqa: B023
                       what=f"{dag_id} at {at} ended")
        assert setup.run_state(f"manual__{ok}", "upstream") == "success"
        assert setup.run_state(f"manual__{bad}", "upstream") == "failed"
        good = _tis(setup, "waiter", f"manual__{ok}")
        assert {t: (ti["state"], ti["try_number"]) for t, ti in good.items()} == {
            "on_task": ("success", 1), "on_group": ("success", 1), "on_dag": ("success", 1), "done": ("success", 1)}
        assert any("Poking for ['grp.gate'] on 2026-07-01T00:00:00+00:00" in line
                   for line in good["on_task"]["tries"][0]["log"])
        failed = _tis(setup, "waiter", f"manual__{bad}")
        assert {t: ti["state"] for t, ti in failed.items()} == {
            "on_task": "failed", "on_group": "upstream_failed", "on_dag": "upstream_failed", "done": "upstream_failed"}
        assert any("Some of the external tasks ['grp.gate'] in DAG upstream failed." in line
                   for line in failed["on_task"]["tries"][0]["log"])
        late = _tis(setup, "late_waiter", f"manual__{ok}")
        assert {t: ti["state"] for t, ti in late.items()} == {"yesterday": "skipped", "hard": "failed"}
        assert any("Sensor has timed out" in line for line in late["hard"]["tries"][0]["log"])
        assert setup.run_state(f"manual__{ok}", "late_waiter") == "failed"
        # check_existence: a task the external DAG does not have fails the sensor at once, with Airflow's line
        code, run = setup.trigger("checks_existence", {"logical_date": ok})
        assert code == 200, run
        wait_until(lambda: setup.run_state(f"manual__{ok}", "checks_existence") == "failed", 20, what="it failed")
        nope = _tis(setup, "checks_existence", f"manual__{ok}")["no_such_task"]
        assert any("The external task nope in DAG upstream does not exist." in line for line in nope["tries"][0]["log"])

        # a recursive clear of upstream's gate: its marker clears waiter.on_task and what follows it in
        # waiter's run at the same logical date; both run again (a try more each)
        code, doc = call(f"{setup.base}/api/dags/upstream/runs/manual__{ok}/clear",
                         body={"task_id": "grp.gate", "recursive": True})
        assert code == 202, doc
        assert doc["cleared_tasks"] == ["grp.gate", "marker"]
        assert doc["recursive"] == [{"dag_id": "waiter", "run_id": f"manual__{ok}",
                                     "cleared_tasks": ["on_task", "on_group", "on_dag", "done"],
                                     "task_instances_cleared": 4}]
        wait_until(lambda: setup.run_state(f"manual__{ok}", "waiter") == "success"
                   and setup.run_state(f"manual__{ok}", "upstream") == "success", 60, what="both ran again")
        again = _tis(setup, "waiter", f"manual__{ok}")
        assert {t: (ti["state"], ti["try_number"]) for t, ti in again.items()} == {
            "on_task": ("success", 2), "on_group": ("success", 2), "on_dag": ("success", 2), "done": ("success", 2)}
        # not recursive: the other DAG is left alone; a bad flag is a 400
        code, doc = call(f"{setup.base}/api/dags/upstream/runs/manual__{ok}/clear", body={"task_id": "marker"})
        assert code == 202 and "recursive" not in doc
        code, doc = call(f"{setup.base}/api/dags/upstream/runs/manual__{ok}/clear", body={"recursive": "yes"})
        assert code == 400 and doc["error"].startswith("recursive must be true or false")
