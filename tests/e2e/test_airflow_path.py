"""A DAG that passes data by XCom and reads the task context: import, validate, test and run, as a newcomer would."""

from __future__ import annotations

import os
import shutil
import signal
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import orjson

from tests.support import ROOT, Daemon, read_jsonl, run_cli, wait_until

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _project(tmp_path: Path) -> Path:
    """dags/realtime.py and config/realtime.toml, the layout of the issue; returns the config."""
    (tmp_path / "dags").mkdir()
    shutil.copy(FIXTURES / "xcom_dag.py", tmp_path / "dags" / "realtime.py")
    cfg = tmp_path / "config" / "realtime.toml"
    res = run_cli("import-dag", str(tmp_path / "dags" / "realtime.py"), "-o", str(cfg))
    assert res.returncode == 0, res.stderr
    return cfg


def test_import_writes_a_python_path_from_the_config_folder(tmp_path):
    cfg = tomllib.loads(_project(tmp_path).read_text())
    assert cfg["pipeline"]["python_path"] == ["../dags"]
    assert cfg["window"]["lateness"] == "0s" and cfg["window"]["idle_timeout"] == "1s"
    # validate runs from the repository root (run_cli's cwd), not from the config's folder
    res = run_cli("validate", "-c", str(tmp_path / "config" / "realtime.toml"))
    assert res.returncode == 0, res.stderr
    assert "realtime:process_data(**context)" in res.stdout
    assert f"state dir     {tmp_path / 'config' / 'var' / 'realtime_data_processing'}" in res.stdout
    assert not (ROOT / "var" / "realtime_data_processing").exists()


def test_validate_says_which_folder_to_add(tmp_path):
    cfg = _project(tmp_path)
    cfg.write_text(cfg.read_text().replace('python_path = ["../dags"]', ""))
    res = run_cli("validate", "-c", str(cfg))
    assert res.returncode == 2
    assert "sources.fetch_data.call: cannot import module 'realtime'" in res.stderr
    assert "add the folder holding realtime.py to [pipeline] python_path" in res.stderr


def test_rtstream_test_runs_the_dag_once_with_xcom_and_context(tmp_path):
    cfg = _project(tmp_path)
    store = tmp_path / "stored.jsonl"
    env = {"STORE_PATH": str(store)}
    res = run_cli("test", "-c", str(cfg), "--at", "2026-11-24T12:00:00Z", env=env)
    assert res.returncode == 0, res.stderr
    rows = [orjson.loads(line) for line in res.stdout.splitlines()]
    assert [r["amount"] for r in rows] == [0, 2, 4, 6, 8, 10]  # fetch's rows, doubled by process via XCom
    assert {(r["window_start"], r["window_end"]) for r in rows} == {("2026-11-24T12:00:00Z", "2026-11-24T12:05:00Z")}
    assert {r["fetched_for"] for r in rows} == {"2026-11-24"}  # fetch got the interval's ds
    assert "6 records in, 1 windows, 6 rows printed, 0 dead letters" in res.stderr
    assert not store.exists()  # configured sinks are not written without --sinks
    assert not (tmp_path / "config" / "var").exists()  # no state kept

    res = run_cli("test", "-c", str(cfg), "--at", "2026-11-24T12:00:00Z", "--sinks", "--output",
                  str(tmp_path / "out.jsonl"), env=env)
    assert res.returncode == 0, res.stderr
    stored = read_jsonl(store)
    assert [r["amount"] for r in stored] == [0, 2, 4, 6, 8, 10]
    assert {r["ds"] for r in stored} == {"2026-11-24"}
    assert {r["interval_end"] for r in stored} == {"2026-11-24 12:05:00+00:00"}
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 6


def test_rtstream_test_names_the_failing_task(tmp_path):
    cfg = _project(tmp_path)
    dag = tmp_path / "dags" / "realtime.py"
    dag.write_text(dag.read_text().replace('return [{**r, "amount": r["amount"] * 2} for r in rows]',
                                           'raise RuntimeError("the API said no")'))
    res = run_cli("test", "-c", str(cfg), env={"STORE_PATH": str(tmp_path / "s.jsonl")})
    assert res.returncode == 1, res.stderr
    assert "FAILED: process_data failed on window" in res.stderr
    assert "the API said no" in res.stderr


def test_rtstream_run_stores_each_fetch_in_its_own_interval(tmp_path):
    cfg = _project(tmp_path)
    store = tmp_path / "stored.jsonl"
    fast = ["--set", "window.size=2s", "--set", "sources.fetch_data.interval=2s",
            "--set", "window.idle_timeout=200ms"]
    with Daemon(cfg, tmp_path, *fast, env={"STORE_PATH": str(store)}) as d:
        wait_until(lambda: len(read_jsonl(store)) >= 18, 40, what="three windows stored")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr
    stored = read_jsonl(store)
    assert sorted({r["amount"] for r in stored}) == [0, 2, 4, 6, 8, 10]
    by_window: dict[str, list[dict]] = {}
    for r in stored:
        by_window.setdefault(r["window_start"], []).append(r)
    assert all(len(rows) == 6 for rows in by_window.values())  # one fetch per interval, none doubled
    for n, (start, rows) in enumerate(sorted(by_window.items())):
        begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
        end = datetime.fromisoformat(rows[0]["interval_end"])
        assert {r["ds"] for r in rows} == {begin.strftime("%Y-%m-%d")}
        assert (end - begin).total_seconds() == 2 and end <= datetime.now(UTC)
        if n:  # the first is the catch-up fetch at start; each later one is stored right after its fetch at
            # `end`, not at the next tick (`end` + 2s) as before
            assert all(0 <= r["stored_at"] - end.timestamp() < 1.5 for r in rows), rows
    assert (tmp_path / "config" / "var" / "realtime_data_processing" / "runs.db").exists()
    assert os.path.exists(cfg)


TEMPLATED = """
import os

from airflow import DAG
from airflow.operators.python import PythonOperator

with DAG("templated", schedule="@hourly", params={"team": "ops", "limit": 2}) as dag:
    def fetch(limit, **context):
        return [{"n": i} for i in range(limit)]

    def label(tag, templates_dict, params, **_):
        return [{"tag": tag, "query": templates_dict["query"], "team": params["team"]}]

    def keep(rows, prefix, **context):
        out = context["ti"].xcom_pull(task_ids="label.rows")
        with open(prefix + "/kept.jsonl", "a") as fh:
            for r in out:
                fh.write(__import__("json").dumps(r) + "\\n")

    a = PythonOperator(task_id="fetch", python_callable=fetch, op_kwargs={"limit": "{{ params.limit }}"})
    b = PythonOperator(task_id="label.rows", python_callable=label, op_args=["day {{ ds_nodash }}"],
                       templates_dict={"query": "SELECT * FROM t WHERE d = '{{ ds }}' AND h < '{{ data_interval_end }}'"})
    c = PythonOperator(task_id="keep", python_callable=keep, op_args=[[]], op_kwargs={"prefix": os.environ.get("OUT", ".")})
    a >> b >> c
"""


def test_op_args_op_kwargs_templates_and_params_are_carried_over(tmp_path):
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "templated.py").write_text(TEMPLATED)
    cfg = tmp_path / "config" / "templated.toml"
    res = run_cli("import-dag", str(tmp_path / "dags" / "templated.py"), "-o", str(cfg))
    assert res.returncode == 0, res.stderr
    doc = tomllib.loads(cfg.read_text())
    stage = doc["stages"]["label_rows"]
    assert stage["task_id"] == "label.rows" and stage["op_args"] == ["day {{ ds_nodash }}"]
    assert stage["params"] == {"team": "ops", "limit": 2}
    assert doc["sources"]["fetch"]["op_kwargs"] == {"limit": "{{ params.limit }}"}
    assert "the op_kwargs of task 'keep' are not constants: left out" in res.stderr  # os.environ[...]: reported
    cfg.write_text(cfg.read_text().replace('call = "templated:keep"',
                                           f'call = "templated:keep"\nop_kwargs = {{ prefix = "{tmp_path}" }}'))
    res = run_cli("test", "-c", str(cfg), "--at", "2026-11-24T13:00:00Z", "--sinks")
    assert res.returncode == 1 and "FAILED: fetch" not in res.stderr  # limit renders as the string "2": range() refuses
    assert "'str' object cannot be interpreted as an integer" in res.stderr
    cfg.write_text(cfg.read_text().replace('{ limit = "{{ params.limit }}" }', "{ limit = 2 }"))
    res = run_cli("test", "-c", str(cfg), "--at", "2026-11-24T13:00:00Z", "--sinks")
    assert res.returncode == 0, res.stderr
    kept = [{k: r[k] for k in ("tag", "team", "query")} for r in read_jsonl(tmp_path / "kept.jsonl")]
    assert kept == [{"tag": "day 20261124", "team": "ops",
                     "query": "SELECT * FROM t WHERE d = '2026-11-24' AND h < '2026-11-24 14:00:00+00:00'"}]
    # an unsupported template is refused before anything runs
    cfg.write_text(cfg.read_text().replace("{{ ds_nodash }}", "{{ macros.ds_add(ds, 1) }}"))
    res = run_cli("validate", "-c", str(cfg))
    assert res.returncode == 2 and "stages.label_rows.op_args: cannot render {{ macros.ds_add(ds, 1) }}" in res.stderr
