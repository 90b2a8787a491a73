"""The DAGs' grid over HTTP, through the real `rtstream run --dags DIR` with an admin server: the
list, paged runs, one run's task instances (tries, log lines, XComs), clear (exactly the cleared task
instances run again, counted by their side effects), its refusals, and the metrics per DAG and task."""

from __future__ import annotations

import re
import signal
import urllib.request
from pathlib import Path

from tests.e2e.dag_grid_support import RUNS, TOKEN, GridSetup, call
from tests.support import wait_until


def _run(base: str, dag_id: str, run_id: str) -> dict:
    code, doc = call(f"{base}/api/dags/{dag_id}/runs/{run_id}")
    assert code == 200, doc
    return doc


def _ti(run: dict, task_id: str) -> dict:
    return next(ti for ti in run["task_instances"] if ti["task_id"] == task_id)


def _metrics(base: str) -> str:
    req = urllib.request.Request(base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read().decode()


def test_list_runs_run_clear_and_metrics(tmp_path: Path) -> None:
    setup = GridSetup(tmp_path)
    base = setup.base
    with setup.daemon() as d:
        setup.wait_settled()
        code, doc = call(base + "/api/dags")
        assert code == 200 and doc["can_clear"] is True
        dags = {x["dag_id"]: x for x in doc["dags"]}
        assert dags["grid_demo"]["tasks"] == ["extract", "transform", "report", "load"]
        assert dags["grid_demo"]["schedule"] == "every 0:00:01" and dags["grid_demo"]["next_run"] is None  # end_date
        assert dags["grid_demo"]["runs_by_state"] == {"success": RUNS}
        assert dags["flaky"]["runs_by_state"] == {"failed": RUNS} and dags["flaky"]["tasks"] == ["check", "publish"]

        # paged, newest first
        code, page1 = call(base + "/api/dags/grid_demo/runs?limit=2")
        assert code == 200 and len(page1["runs"]) == 2 and page1["next_before"] == page1["runs"][-1]["logical_date"]
        code, page2 = call(base + f"/api/dags/grid_demo/runs?limit=2&before={page1['next_before'].replace('+', '%2B')}")
        assert code == 200 and len(page2["runs"]) == 1 and page2["next_before"] is None
        runs = page2["runs"] + page1["runs"][::-1]  # oldest first
        assert [r["logical_date"] for r in runs] == sorted(r["logical_date"] for r in runs)
        assert all(r["task_instances"]["load"] == {"state": "success", "tries": 1} for r in runs)
        flaky = setup.runs("flaky")[::-1]
        assert all(r["task_instances"] == {"check": {"state": "failed", "tries": 2},
                                           "publish": {"state": "upstream_failed", "tries": 0}} for r in flaky)

        # one run: tries with their log lines (bounded, redacted) and XComs
        first = runs[0]["run_id"]
        run = _run(base, "grid_demo", first)
        extract, transform = _ti(run, "extract"), _ti(run, "transform")
        assert extract["xcom"] == {"return_value": {"rows": 21}} and transform["xcom"] == {"return_value": 42}
        assert [t["try_number"] for t in extract["tries"]] == [1] and extract["tries"][0]["state"] == "success"
        lines = extract["tries"][0]["log"]
        assert len(lines) == 501 and re.fullmatch(r"\(\d+ earlier lines not kept\)", lines[0]), lines[:2]
        assert lines[-2] == "row 1999"
        assert lines[-1] == "connecting to postgresql://loader:***@db.internal/warehouse"
        assert "hunter2secret" not in str(run)
        tlog = transform["tries"][0]["log"]
        assert any(line.endswith("INFO grid_demo: doubling 21") for line in tlog), tlog
        assert "transforming 21 rows" in tlog
        assert transform["tries"][0]["duration"] >= 0

        # before any clear: each task instance's code ran once (flaky's check twice: one retry)
        ran = setup.ran()
        assert {k: v for k, v in ran.items() if k[0] == "grid_demo"} == \
            {("grid_demo", t, r["run_id"]): 1 for r in runs for t in ("extract", "transform", "report", "load")}
        assert all(ran[("flaky", "check", r["run_id"])] == 2 for r in flaky)
        assert not any(k[1] == "publish" for k in ran)

        # refusals: one clear line each
        clear = f"{base}/api/dags/grid_demo/runs/{first}/clear"
        assert call(clear, token=None, body={"task_id": "transform"})[0] == 401
        assert call(clear, token="wrong", body={"task_id": "transform"})[0] == 401
        code, err = call(clear, raw=b"{not json")
        assert code == 400 and err["error"].startswith("the body must be JSON")
        code, err = call(clear, body={"task": "transform"})
        assert code == 400 and err["error"] == "unknown field(s) task: expected task_id, downstream and recursive"
        code, err = call(clear, body={"task_id": "transfrom"})
        assert code == 404 and err["error"].startswith("DAG grid_demo has no task 'transfrom'")
        code, err = call(f"{base}/api/dags/grid_demo/runs/nope/clear", body={})
        assert code == 404 and err["error"] == "DAG grid_demo has no run 'nope'"
        code, err = call(f"{base}/api/dags/ghost/runs/{first}/clear", body={})
        assert code == 404 and err["error"] == "no DAG 'ghost' runs in this daemon"
        assert call(base + "/api/dags/grid_demo/runs?limit=x")[0] == 400
        assert call(base + "/api/dags/grid_demo/runs?before=yesterday")[0] == 400
        assert call(base + "/api/dags/ghost/runs")[0] == 404
        assert call(base + "/api/dags/grid_demo/runs/nope")[0] == 404
        assert setup.ran() == ran  # nothing ran for a refused clear

        # clear transform: it and its downstream (load) run again; extract and report do not
        code, done = call(clear, body={"task_id": "transform"})
        assert code == 202 and done["cleared_tasks"] == ["transform", "load"], done
        wait_until(lambda: _run(base, "grid_demo", first)["state"] == "success" and
                   _ti(_run(base, "grid_demo", first), "load")["try_number"] == 2, 30, what="the cleared run re-run")
        after = setup.ran()
        changed = {k: after[k] - ran.get(k, 0) for k in after if after[k] != ran.get(k, 0)}
        assert changed == {("grid_demo", "transform", first): 1, ("grid_demo", "load", first): 1}
        run = _run(base, "grid_demo", first)
        assert [t["try_number"] for t in _ti(run, "transform")["tries"]] == [1, 2]
        assert _ti(run, "transform")["xcom"] == {"return_value": 42} and _ti(run, "extract")["try_number"] == 1

        # the whole failed run of flaky, once its source is fixed: check gets its retries again
        setup.broken.unlink()
        target = flaky[1]["run_id"]
        code, done = call(f"{base}/api/dags/flaky/runs/{target}/clear", body={})
        assert code == 202 and done["cleared_tasks"] == ["check", "publish"]
        wait_until(lambda: _run(base, "flaky", target)["state"] == "success", 30, what="flaky's cleared run")
        check = _ti(_run(base, "flaky", target), "check")
        assert [(t["try_number"], t["state"]) for t in check["tries"]] == [(1, "up_for_retry"), (2, "failed"),
                                                                             (3, "success")]
        again = setup.ran()
        changed = {k: again[k] - after.get(k, 0) for k in again if again[k] != after.get(k, 0)}
        assert changed == {("flaky", "check", target): 1, ("flaky", "publish", target): 1}

        metrics = _metrics(base)
        assert 'rtstream_dag_runs{dag_id="flaky",state="failed"} 2.0' in metrics
        assert 'rtstream_dag_runs{dag_id="flaky",state="success"} 1.0' in metrics
        assert f'rtstream_dag_runs{{dag_id="grid_demo",state="success"}} {float(RUNS)}' in metrics
        assert f'rtstream_dag_task_duration_seconds_count{{dag_id="grid_demo",task_id="transform"}} {RUNS + 1.0}' \
            in metrics
        assert 'rtstream_dag_task_instances{dag_id="flaky",state="upstream_failed",task_id="publish"} 2.0' in metrics
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr
    assert TOKEN not in d.stderr


def test_clear_needs_a_token_even_on_loopback(tmp_path: Path) -> None:
    setup = GridSetup(tmp_path, token=None, admin_in_config=False)  # --dags DIR --set admin.listen=...
    with setup.daemon() as d:
        setup.wait_settled(token=None)
        run_id = setup.runs("grid_demo", token=None)[0]["run_id"]
        assert call(setup.base + "/api/dags", token=None)[1]["can_clear"] is False
        code, err = call(f"{setup.base}/api/dags/grid_demo/runs/{run_id}/clear", token=None, body={})
        assert code == 403 and err == {"error": "clearing task instances needs admin.token to be set"}
        assert call(setup.base + "/api/status", token=None)[1]["pipeline"] is None
        assert call(setup.base + "/api/runs", token=None)[0] == 404
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr


def test_a_pipeline_and_dags_share_one_admin_server(tmp_path: Path) -> None:
    from tests.data import make_events, write_lines
    from tests.support import Daemon, write_config

    setup = GridSetup(tmp_path)
    write_lines(tmp_path / "in.jsonl", make_events(20, span_s=60, seed=5))
    doc = {"pipeline": {"name": "beside-dags", "flow": "events >> files"},
           "window": {"size": "1m", "lateness": "0s", "idle_timeout": "300ms"},
           "sources": {"events": {"type": "file", "path": "in.jsonl", "follow": True, "poll_interval": "50ms"}},
           "sinks": {"files": {"type": "file", "path": "out"}},
           "dags": {"path": "dags"}, "admin": {"listen": f"127.0.0.1:{setup.port}", "token": TOKEN},
           "daemon": {"state_dir": "state", "shutdown_grace": "3s"}}
    with Daemon(write_config(tmp_path / "both.toml", doc), tmp_path, env=setup.env) as d:
        setup.wait_settled()
        assert call(setup.base + "/api/status")[1]["pipeline"] == "beside-dags"
        assert {x["dag_id"] for x in call(setup.base + "/api/dags")[1]["dags"]} == {"grid_demo", "flaky"}
        page = call(setup.base + "/")[1].decode()
        assert 'id="dags"' in page and 'id="flow"' in page
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr
