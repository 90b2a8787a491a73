"""Operators rtstream does not run natively, run through the real Airflow (the `rtstream[airflow]` extra):
the real `rtstream` of a venv holding apache-airflow (tests/compat/bridge_venv.py) on the DAGs of
tests/fixtures/dags_bridge, against a real local HTTP server and a SQLite file, connections and
variables from AIRFLOW_CONN_* / AIRFLOW_VAR_*, and no Airflow metadata database.

The venv takes minutes to build, so `make test` runs these when it is already there (`make compat`
builds it, or RTSTREAM_BUILD_BRIDGE_VENV=1 here) and skips them, saying so, when it is not.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.compat import bridge_venv

DAGS = Path(__file__).resolve().parents[1] / "fixtures" / "dags_bridge"
BROKEN = Path(__file__).resolve().parents[1] / "fixtures" / "dags_broken"
AT = "2024-06-03T00:00:00+00:00"


@pytest.fixture(scope="module")
def venv() -> Path:
    if not bridge_venv.ready():
        if os.environ.get("RTSTREAM_BUILD_BRIDGE_VENV") != "1":
            pytest.skip(f"no {bridge_venv.VENV.name} with the real Airflow: `make compat` builds it "
                        "(or set RTSTREAM_BUILD_BRIDGE_VENV=1)")
        bridge_venv.ensure()
    return bridge_venv.VENV


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RTSTREAM_AIRFLOW"))}
    return {**env, "AIRFLOW_HOME": str(home), **extra}


async def rtstream(venv: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(str(venv / "bin" / "rtstream"), *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 180)
    except TimeoutError:
        proc.kill()  # a hung run must not outlive the test
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def rows(stdout: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stdout.splitlines()]


async def test_http_operator_runs_its_own_execute_against_a_real_server(venv: Path, tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    async def echo(request: web.Request) -> web.Response:
        body = await request.text()
        seen.append({"method": request.method, "path": request.path, "body": json.loads(body),
                     "logical": request.headers.get("X-Logical")})
        return web.json_response({"echo": body, "path": request.path})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        env = env_for(tmp_path / "home", AIRFLOW_CONN_API=f"http://127.0.0.1:{port}")
        code, out, err = await rtstream(venv, env, "dags", "test", str(DAGS / "http_call.py"), "--dag", "http_call",
                                        "--json", "--at", AT)
        listed = await rtstream(venv, env, "dags", "list", str(DAGS / "http_call.py"))
    finally:
        await runner.cleanup()
    assert code == 0, err
    body = '{"who": "ops", "run": "manual__2024-06-03T00:00:00+00:00"}'
    assert seen == [{"method": "POST", "path": "/items/2024-06-03", "body": json.loads(body), "logical": AT}]
    assert rows(out) == [
        {"dag_id": "http_call", "task_id": "fetch", "map_index": -1, "state": "success", "tries": 1,
         "xcom": {"return_value": {"echo": body, "path": "/items/2024-06-03"}}},
        {"dag_id": "http_call", "task_id": "shout", "map_index": -1, "state": "success", "tries": 1,
         "xcom": {"return_value": body.upper()}},
        {"dag_id": "http_call", "run_state": "success"},
    ]
    assert listed[0] == 0, listed[2]
    how = {line.split()[0]: line for line in listed[1].splitlines() if line.startswith("  ")}
    assert "airflow: HttpOperator.execute (apache-airflow 2.10.5)" in how["fetch"]
    assert "airflow: HttpOperator.execute" in how["call"]
    assert how["shout"].split()[1:3] == ["PythonOperator", "native"]
    assert not (tmp_path / "home" / "airflow.db").exists()  # no metadata database


async def test_a_missing_connection_fails_the_task_with_airflows_error_and_no_database(venv: Path,
                                                                                       tmp_path: Path) -> None:
    code, out, err = await rtstream(venv, env_for(tmp_path / "home"), "dags", "test", str(DAGS / "http_call.py"),
                                    "--dag", "http_no_connection", "--json", "--at", AT)
    assert code == 1
    assert rows(out) == [{"dag_id": "http_no_connection", "task_id": "call", "map_index": -1, "state": "failed",
                          "tries": 1, "xcom": {}}, {"dag_id": "http_no_connection", "run_state": "failed"}]
    assert "The conn_id `not_defined_anywhere` isn't defined" in err
    assert "FAILED: http_no_connection (failed tasks: call)" in err
    assert not (tmp_path / "home" / "airflow.db").exists()


async def test_a_custom_operator_pushes_xcom_reads_a_variable_and_a_connection(venv: Path, tmp_path: Path) -> None:
    env = env_for(tmp_path / "home", AIRFLOW_CONN_WAREHOUSE="postgres://loader:s3cr3t-pw@db.internal:5433/sales",
                  AIRFLOW_VAR_THRESHOLD="41")
    code, out, err = await rtstream(venv, env, "dags", "test", str(DAGS / "custom_operator.py"), "--json", "--at", AT)
    assert code == 0, err
    assert rows(out) == [
        {"dag_id": "custom_operator", "task_id": "load", "map_index": -1, "state": "success", "tries": 1,
         "xcom": {"host": "db.internal:5433/sales", "threshold": 42, "return_value": "hello team on 2024-06-03"}},
        {"dag_id": "custom_operator", "run_state": "success"},
    ]
    assert "connecting with password ***" in err  # Airflow masks it, and so do rtstream's log lines
    assert "s3cr3t-pw" not in out + err


async def test_sql_execute_query_operator_renders_its_sql_and_returns_the_rows(venv: Path, tmp_path: Path) -> None:
    db = tmp_path / "lite.db"
    sqlite3.connect(db).close()
    env = env_for(tmp_path / "home", AIRFLOW_CONN_LITE=json.dumps({"conn_type": "sqlite", "host": str(db)}))
    code, out, err = await rtstream(venv, env, "dags", "test", str(DAGS / "sql_query.py"), "--json", "--at", AT)
    assert code == 0, err
    assert rows(out)[0]["xcom"] == {"return_value": [[42, "20240603"]]}
    assert "Running statement: select 21 * 2, '20240603'" in err


async def test_sensors_poke_and_soft_fail_skips(venv: Path, tmp_path: Path) -> None:
    code, out, err = await rtstream(venv, env_for(tmp_path / "home"), "dags", "test",
                                    str(DAGS / "sensors_and_subclass.py"), "--dag", "sensors", "--json", "--at", AT)
    assert code == 0, err
    assert {r["task_id"]: r["state"] for r in rows(out) if "task_id" in r} == {"ready": "success", "never": "skipped"}


async def test_what_cannot_run_through_airflow_is_refused_with_the_reason(venv: Path, tmp_path: Path) -> None:
    env = env_for(tmp_path / "home")
    code, out, err = await rtstream(venv, env, "dags", "test", str(DAGS / "sensors_and_subclass.py"),
                                    "--dag", "subclassed", "--json", "--at", AT)
    assert (code, out) == (2, "")
    assert ("rtstream: DAG subclassed refused: task paged (PagedHttp): PagedHttp subclasses Airflow's HttpOperator; "
            "a subclass of a real Airflow operator defined in a DAG file is not run through Airflow yet") in err
    code, out, err = await rtstream(venv, env, "dags", "test", str(BROKEN / "unsupported_operator.py"), "--json")
    assert (code, out) == (2, "")
    assert ("task upload (S3CreateObjectOperator): S3CreateObjectOperator (from airflow.providers.amazon.aws.operators.s3)"
            " cannot be imported from the installed Airflow") in err
    assert "pip install apache-airflow-providers-amazon" in err and "Traceback" not in err


DAEMON_DAG = '''
from datetime import datetime, timedelta
from airflow import DAG
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator

with DAG("hourly_sql", start_date=datetime(2026, 1, 1), schedule=timedelta(hours=1), catchup=False):
    SQLExecuteQueryOperator(task_id="record", conn_id="lite",
                            sql="insert into runs values ('{{ data_interval_start.isoformat() }}', '{{ run_id }}')")
'''


def test_the_daemon_runs_a_bridged_operator_on_its_schedule_and_stops_on_sigterm(venv: Path, tmp_path: Path) -> None:
    import signal
    import subprocess

    from tests.support import wait_until

    db = tmp_path / "lite.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table runs (interval_start text, run_id text)")
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "hourly_sql.py").write_text(DAEMON_DAG)
    env = env_for(tmp_path / "home", AIRFLOW_CONN_LITE=json.dumps({"conn_type": "sqlite", "host": str(db)}))
    store = tmp_path / "state" / "dag_runs.db"

    def runs(state: str) -> list[tuple[str, str]]:
        if not store.exists():
            return []
        try:
            with sqlite3.connect(store) as conn:
                return conn.execute("select interval_start, run_id from dag_run where state = ?", (state,)).fetchall()
        except sqlite3.OperationalError:  # the daemon has not made its tables yet
            return []

    proc = subprocess.Popen([str(venv / "bin" / "rtstream"), "run", "--dags", "dags", "--set", "daemon.state_dir=state"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: runs("success") or proc.poll() is not None, 120, what="a successful hourly_sql run")
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    with sqlite3.connect(db) as conn:
        written = conn.execute("select interval_start, run_id from runs").fetchall()
    done = runs("success")
    assert len(done) == 1 and runs("failed") == [] and runs("running") == []
    from datetime import datetime

    assert [(datetime.fromisoformat(a), b) for a, b in written] == [(datetime.fromisoformat(a), b) for a, b in done]


async def test_an_operator_that_needs_airflows_metadata_database_is_refused(venv: Path, tmp_path: Path) -> None:
    code, out, err = await rtstream(venv, env_for(tmp_path / "home"), "dags", "test",
                                    str(DAGS / "sensors_and_subclass.py"), "--dag", "needs_metadata_db", "--json")
    assert (code, out) == (2, "")
    assert ("rtstream: DAG needs_metadata_db refused: task mark (ExternalTaskMarker): Airflow's ExternalTaskMarker "
            "reads and writes Airflow's metadata database (other DAGs' runs), which rtstream does not have") in err


async def test_every_import_form_of_a_real_operator_is_a_task_of_the_dag(venv: Path, tmp_path: Path) -> None:
    code, out, err = await rtstream(venv, env_for(tmp_path / "home"), "dags", "list", str(DAGS / "import_forms.py"))
    assert code == 0, err
    how = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert set(how) == {"aliased", "submodule", "dotted", "own_operator"}, out
    assert all("airflow: HttpOperator.execute" in how[t] for t in ("aliased", "submodule", "dotted"))
    assert how["own_operator"].split()[1:3] == ["Mine", "native"]
    code, out, err = await rtstream(venv, env_for(tmp_path / "home"), "dags", "test", str(DAGS / "bad_arguments.py"))
    assert (code, out) == (2, "")
    assert "bad_arguments.py:8: AirflowException: Invalid arguments were passed to HttpOperator" in err, err
    assert "not_an_argument" in err and "Traceback" not in err


async def test_an_operator_made_by_a_helper_module_of_the_dag_folder_is_a_task(venv: Path, tmp_path: Path) -> None:
    code, out, err = await rtstream(venv, env_for(tmp_path / "home"), "dags", "list", str(DAGS / "uses_helper.py"))
    assert code == 0, err
    assert [line.split()[:3] for line in out.splitlines() if line.startswith("  ")] == [
        ["ping", "HttpOperator", "airflow:"]]


async def test_a_bridged_operator_takes_an_xcomarg_and_maps(venv: Path, tmp_path: Path) -> None:
    db = tmp_path / "lite.db"
    sqlite3.connect(db).close()
    env = env_for(tmp_path / "home", AIRFLOW_CONN_LITE=json.dumps({"conn_type": "sqlite", "host": str(db)}))
    code, out, err = await rtstream(venv, env, "dags", "test", str(DAGS / "mapped_sql.py"), "--json", "--at", AT)
    assert code == 0, err
    got = {(r["task_id"], r["map_index"]): (r["state"], r["xcom"]) for r in rows(out) if "task_id" in r}
    assert got == {("numbers", -1): ("success", {"return_value": "select 7"}),
                   ("from_xcomarg", -1): ("success", {"return_value": [[7]]}),
                   ("mapped", 0): ("success", {"return_value": [[1]]}),
                   ("mapped", 1): ("success", {"return_value": [[1]]})}


async def test_a_real_operator_built_by_a_package_outside_the_dag_folder_is_refused(venv: Path, tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "company_ops.py").write_text(
        "from airflow.providers.http.operators.http import HttpOperator\n\n\n"
        "def ping(task_id):\n    return HttpOperator(task_id=task_id, http_conn_id='api', endpoint='ping')\n")
    (tmp_path / "dags").mkdir()
    dag = tmp_path / "dags" / "outside.py"
    dag.write_text("from datetime import datetime\nfrom airflow import DAG\nfrom company_ops import ping\n\n"
                   "with DAG('outside', schedule=None, start_date=datetime(2024, 1, 1)):\n    ping('ping')\n")
    env = {**env_for(tmp_path / "home"), "PYTHONPATH": str(tmp_path / "site")}
    code, out, err = await rtstream(venv, env, "dags", "test", str(dag), "--json")
    assert (code, out) == (2, ""), err
    assert (f"rtstream: cannot load {dag}:6: AirflowException: HttpOperator(task_id='ping') was built with the real "
            "Airflow's classes (from airflow.providers.http.operators.http), outside the DAG folder's imports: it would "
            "not be a task of rtstream's DAG") in err, err
