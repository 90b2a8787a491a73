"""From the seed Airflow DAG to a running rtstream pipeline."""

from __future__ import annotations

import signal
import tomllib
from pathlib import Path

from tests.support import Daemon, read_jsonl, run_cli, wait_until

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

FILLED = '''
import json

SINK = {sink!r}
_calls = {{"n": 0}}


def fetch_data():
    _calls["n"] += 1
    return [{{"user": f"u{{i % 3}}", "amount": i, "call": _calls["n"]}} for i in range(6)]


def process_data(records):
    totals = {{}}
    for r in records:
        totals[r["user"]] = totals.get(r["user"], 0) + r["amount"]
    return [{{"user": u, "total": t}} for u, t in sorted(totals.items())]


def store_data(records):
    with open(SINK, "a") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\\n")
'''


def test_seed_dag_imports_validates_and_runs(tmp_path):
    src = (FIXTURES / "seed_dag.py").read_text()
    dag = tmp_path / "seed_dag.py"
    # the test fills the three functions in, as a user would; the rest of the file is unchanged
    body = src.replace("def fetch_data(): ...\n\n\ndef process_data(): ...\n\n\ndef store_data(): ...\n",
                       FILLED.format(sink=str(tmp_path / "stored.jsonl")))
    dag.write_text(body)
    res = run_cli("import-dag", str(dag), "-o", str(tmp_path / "seed.toml"))
    assert res.returncode == 0, res.stderr
    cfg = tomllib.loads((tmp_path / "seed.toml").read_text())
    assert cfg["pipeline"] == {"name": "realtime_data_processing", "flow": "fetch_data >> process_data >> store_data",
                               "python_path": ["."]}  # the DAG's folder, from the config's
    assert cfg["window"]["size"] == "5m"
    assert cfg["defaults"] == {"retries": 1, "retry_delay": "1m"}
    assert cfg["sources"]["fetch_data"] == {"type": "python", "call": "seed_dag:fetch_data", "interval": "5m"}
    assert cfg["stages"]["process_data"]["call"] == "seed_dag:process_data"
    assert cfg["sinks"]["store_data"]["call"] == "seed_dag:store_data"
    assert "# Real-time Data Processing DAG" in (tmp_path / "seed.toml").read_text()
    assert "--from 2022-01-01T00:00:00Z" in (tmp_path / "seed.toml").read_text()
    assert "email_on_failure" not in res.stderr or "webhook" in res.stderr
    assert run_cli("validate", "-c", str(tmp_path / "seed.toml")).returncode == 0

    fast = ["--set", "window.size=1s", "--set", "window.idle_timeout=300ms", "--set", "sources.fetch_data.interval=1s",
            "--set", f"daemon.state_dir={tmp_path / 'state'}"]
    with Daemon(tmp_path / "seed.toml", tmp_path, *fast) as d:
        wait_until(lambda: len(read_jsonl(tmp_path / "stored.jsonl")) >= 6, 30, what="two windows stored")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr
    stored = read_jsonl(tmp_path / "stored.jsonl")
    assert {r["user"] for r in stored} == {"u0", "u1", "u2"}
    assert {r["total"] for r in stored if r["user"] == "u0"} == {3}  # 0 + 3 from each call's window
    assert all(r["window_start"].endswith("Z") for r in stored)


def test_a_dag_with_a_bash_step_is_run_as_it_is_with_the_line(tmp_path):
    # it was converted to `extract >> [load, archive]`, the Bash step skipped: another meaning
    res = run_cli("import-dag", str(FIXTURES / "mixed_dag.py"))
    assert res.returncode == 2, res.stderr
    assert res.stdout == ""
    assert "better run as it is: rtstream run --dags" in res.stderr
    assert "line 9: task 'shout' is a BashOperator: it runs a command; a pipeline has no step for it" in res.stderr


def test_unknown_schedule_leaves_a_placeholder(tmp_path):
    dag = tmp_path / "odd.py"
    dag.write_text("from airflow import DAG\nfrom airflow.operators.python import PythonOperator\n"
                   "def f(): ...\ndef g(): ...\n"
                   "with DAG('odd', schedule_interval='0 9 * * 1-5') as dag:\n"
                   "    a = PythonOperator(task_id='a', python_callable=f)\n"
                   "    b = PythonOperator(task_id='b', python_callable=g)\n    a >> b\n")
    res = run_cli("import-dag", str(dag))
    assert 'size = "FILL_ME"' in res.stdout
    assert "schedule '0 9 * * 1-5' has no fixed window size" in res.stderr
