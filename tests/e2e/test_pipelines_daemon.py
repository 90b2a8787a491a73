"""Several pipelines and DAGs in one daemon: one pipeline's destination down, one DAG failing, one DAG
calling sys.exit; the other pipeline's output complete and exact with its commits at the end, then the
first catching up once its destination is back; one admin server showing them all; SIGTERM exit 0."""

from __future__ import annotations

import signal
from datetime import datetime

import pytest

from tests.e2e.pipelines_support import TwoPipelines
from tests.http_peers import ThreadedServer
from tests.support import run_cli, wait_until

pytestmark = pytest.mark.timeout(300)


def _norm(results: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    return {(datetime.fromisoformat(s.replace("Z", "+00:00")).isoformat(), u): n for (s, u), n in results.items()}


def test_a_failing_pipeline_and_dag_leave_the_others_exact(tmp_path, kafka):
    setup = TwoPipelines(tmp_path, kafka.bootstrap)
    with setup.daemon() as d:
        # clicks: every window through the per_window DAG, its offsets committed to the end
        wait_until(lambda: setup.row("clicks").get("state") == "finished", 90,
                   what=f"clicks finished ({setup.row('clicks')})")
        assert _norm(setup.dag_results()) == _norm(setup.clicks.truth())
        assert setup.clicks.committed() == setup.clicks.ends
        # orders: its receiver is down: halted, retrying, nothing of it committed past what was written
        orders = wait_until(lambda: (r := setup.row("orders")).get("state") == "halted" and r, 30, what="orders halted")
        assert "hook: halted, retrying:" in orders["last_error"], orders
        assert all(c in (None, 0) for c in setup.orders.committed().values()), setup.orders.committed()
        # the DAGs: always_fails fails run after run, exits' sys.exit(3) fails its task, the daemon runs on
        st = wait_until(lambda: (s := setup.status()) and {d["dag_id"]: (d["last_run"] or {}).get("state")
                                                        for d in s["dags"]}.get("exits") == "failed" and s, 60,
                        what="the exits DAG's run failed")
        dags = {x["dag_id"]: x for x in st["dags"]}
        assert sorted(dags) == ["always_fails", "exits", "per_window"]
        assert dags["always_fails"]["schedule"] and dags["always_fails"]["next_run"] is not None
        wait_until(lambda: {x["dag_id"]: x for x in setup.status()["dags"]}["always_fails"]["runs_by_state"]
                   .get("failed", 0) >= 1, 60, what="a failed always_fails run")
        assert [p["name"] for p in st["pipelines"]] == ["clicks", "orders"]
        assert st["ready"] is False and any(k.startswith("orders.") for k in st["problems"]), st["problems"]
        assert any(e["pipeline"] == "orders" and "sink hook failed" in e["message"] for e in st["errors"]), st["errors"]
        runs = setup.get("/api/runs?pipeline=clicks&limit=100")
        assert runs["components"] == ["per_user", "to_dag"]
        starts = sorted({s for s, _ in setup.clicks.truth()})
        assert sorted(w["window_start"] for w in runs["windows"]) == starts
        # the grid's links: each window names the run it started, each run the window that started it
        for w in runs["windows"]:
            ld = datetime.fromisoformat(w["window_start"].replace("Z", "+00:00")).isoformat()
            assert w["dag_runs"] == [{"dag_id": "per_window", "run_id": f"window__{ld}", "state": "success"}], w
        dag_runs = setup.get("/api/dags/per_window/runs?limit=100")["runs"]
        assert sorted((r["window"]["pipeline"], r["window"]["window_start"], r["window"]["window_end"])
                      for r in dag_runs) == [("clicks", w["window_start"], w["window_end"]) for w in
                                             sorted(runs["windows"], key=lambda w: w["window_start"])]
        first = runs["windows"][-1]
        detail = setup.get(f"/api/window?pipeline=clicks&start={first['window_start']}")
        assert detail["dag_runs"] == first["dag_runs"] and detail["components"]["to_dag"]["state"] == "success"
        one = setup.get(f"/api/dags/per_window/runs/{dag_runs[0]['run_id']}")
        assert one["window"]["pipeline"] == "clicks"
        kept = [line for ti in one["task_instances"] for t in ti["tries"] for line in t["log"]]
        assert kept and not any("[clicks]" in line for line in kept), kept  # a try's lines as the task logged them
        assert "window" not in setup.get("/api/dags/always_fails/runs?limit=5")["runs"][0]
        assert setup.get("/api/runs?pipeline=orders&limit=100")["windows"] == [] or all(
            w["dag_runs"] == [] for w in setup.get("/api/runs?pipeline=orders&limit=100")["windows"])
        metrics = setup.get("/metrics")
        assert 'rtstream_sink_halted{pipeline="orders",sink="hook"} 1.0' in metrics
        assert 'rtstream_sink_halted{pipeline="clicks",sink="to_dag"} 0.0' in metrics
        assert 'id="pipeline-rows"' in setup.get("/")
        # the receiver comes back: orders catches up, exactly, and commits to the end
        with ThreadedServer(setup.receiver.app, port=setup.port):
            wait_until(lambda: setup.row("orders").get("state") == "finished", 90, what="orders finished")
            assert setup.receiver.results() == setup.orders.truth()
            assert setup.orders.committed() == setup.orders.ends
            shown = run_cli("status", "-c", str(setup.config), env=setup.env)
            assert "clicks: finished, windows 5" in shown.stdout and "orders: finished, windows 5" in shown.stdout
            assert "DAG per_window: " in shown.stdout, shown
            d.signal(signal.SIGTERM)
            assert d.wait(30) == 0, d.stderr
    # the exits DAG's task said SystemExit(3) (its traceback is the task's log, as Airflow's); no pipeline restarted
    assert "Task failed due to SystemExit(3)" in d.stderr
    assert "starting it again" not in d.stderr, d.stderr
    listed = run_cli("runs", "-c", str(setup.config), env=setup.env)
    assert listed.returncode == 0, listed.stderr
    assert "== pipeline clicks" in listed.stdout and "== pipeline orders" in listed.stdout
    assert listed.stdout.count("2026-01-01T00:04:00Z") >= 2, listed.stdout
    assert "[orders] " in d.stderr and "[clicks] " in d.stderr
