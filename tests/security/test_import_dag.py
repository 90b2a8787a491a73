"""import-dag on hostile or odd DAG files: ids escaped, self-references and out-of-range values
refused with their line, and a DAG file's top level run once by validate and run."""

from __future__ import annotations

import signal
import tomllib
from pathlib import Path

import pytest

from tests.support import Daemon, read_jsonl, run_cli, wait_until

HEADER = ("from datetime import datetime, timedelta\n"
          "from airflow import DAG\n"
          "from airflow.operators.python import PythonOperator\n")


def dag_file(tmp_path: Path, body: str, name: str = "odd_dag.py") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body)
    return path


def refused(res, line: int, reason: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    assert f": line {line}: " in res.stderr and reason in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


INJECTING = {
    "table": 'a]\n[sources.evil]\ntype = "generator',
    "quote": 'b" = 1\n[sinks.evil',
    "dots": "c.d",
    "unicode": "données",
    "control": "e\x00\x1b[31m\u2028",
    "backslash": "f\\\\\\",
}


def test_odd_ids_are_escaped_and_parse_to_the_intended_tables(tmp_path):
    ids = list(INJECTING.values())
    dag_id = 'p"]\n[daemon]\nstate_dir = "/etc'
    body = "".join(f"def f{i}(*a): ...\n" for i in range(len(ids)))
    body += f"with DAG({dag_id!r}, schedule=timedelta(minutes=5), description='one\\n[x]\\n# two') as dag:\n"
    body += "".join(f"    t{i} = PythonOperator(task_id={tid!r}, python_callable=f{i})\n" for i, tid in enumerate(ids))
    body += "    " + " >> ".join(f"t{i}" for i in range(len(ids) - 1)) + f" >> t{len(ids) - 1}\n"
    res = run_cli("import-dag", str(dag_file(tmp_path, body)))
    assert res.returncode == 0, res.stderr
    cfg = tomllib.loads(res.stdout)
    # exactly the intended tables, nothing injected
    assert set(cfg) == {"pipeline", "window", "sources", "stages", "sinks", "daemon"}
    assert cfg["pipeline"]["name"] == dag_id
    assert cfg["daemon"] == {"state_dir": "var/p____daemon__state_dir_____etc"}  # one directory under var/
    assert list(cfg["sources"]) == ["a___sources_evil__type____generator"]
    assert list(cfg["sinks"]) == ["f___"]
    assert list(cfg["stages"]) == ["b____1__sinks_evil", "c_d", "données", "e___31m_"]
    for section in ("sources", "stages", "sinks"):
        for name, body in cfg[section].items():
            assert body["type"] == "python" and body["call"].startswith("odd_dag:f"), (name, body)
    assert cfg["pipeline"]["flow"] == " >> ".join([*cfg["sources"], *cfg["stages"], *cfg["sinks"]])
    for tid in ids:  # each rename is reported, with the id as written (données is a name a flow can use)
        assert (repr(tid) in res.stderr) is (tid != "données")
    assert "\x1b" not in res.stderr and "\x1b" not in res.stdout
    # and it is a config rtstream accepts, flow and all (state_dir moved under tmp_path)
    out = tmp_path / "odd.toml"
    out.write_text(res.stdout)
    checked = run_cli("validate", "-c", str(out), "--set", f"daemon.state_dir={tmp_path / 'state'}")
    assert checked.returncode == 0, checked.stderr


def test_a_task_id_that_injects_a_table_stays_one_component(tmp_path):
    body = ("def f(): ...\ndef g(r): ...\n"
            "with DAG('d', schedule='*/5 * * * *') as dag:\n"
            "    a = PythonOperator(task_id='x]\\n[sinks.y]\\ncall = \"os:system', python_callable=f)\n"
            "    b = PythonOperator(task_id='out', python_callable=g)\n"
            "    a >> b\n")
    res = run_cli("import-dag", str(dag_file(tmp_path, body)))
    assert res.returncode == 0, res.stderr
    cfg = tomllib.loads(res.stdout)
    assert set(cfg["sinks"]) == {"out"} and len(cfg["sources"]) == 1
    assert "os:system" not in str(cfg["sources"]) + str(cfg["sinks"])


@pytest.mark.parametrize("body,line,reason", [
    ("x = x\nwith DAG('d', schedule=timedelta(minutes=x)) as dag: pass\n", 4,
     "the name 'x' is defined through itself (x -> x)"),
    ("a = b\nb = a\nwith DAG('d', default_args={'retries': a}) as dag: pass\n", 5,
     "the name 'a' is defined through itself (a -> b -> a)"),
    ("n = n\nwith DAG(n) as dag: pass\n", 4, "the name 'n' is defined through itself (n -> n)"),
    ("a = b\nb = c + 1\nc = 2 * a\nwith DAG('d', schedule=timedelta(minutes=b)) as dag: pass\n", 4,
     "the name 'b' is defined through itself (b -> c -> a -> b)"),
    ("def f(): ...\nwith DAG('d') as dag:\n    t = PythonOperator(task_id=tid, python_callable=f)\n"
     "    tid = tid\n    u = PythonOperator(task_id=tid, python_callable=f)\n", 7,
     "the name 'tid' is defined through itself (tid -> tid)"),
])
def test_self_references_are_refused_with_their_line(tmp_path, body, line, reason):
    # the line is the one whose reference closes the loop
    refused(run_cli("import-dag", str(dag_file(tmp_path, body))), line, reason)


@pytest.mark.parametrize("expr,reason", [
    ("timedelta(days=10**10)", "timedelta(days=10 ** 10) is out of range (at most 999,999,999 days)"),
    ("timedelta(days=10000000000)", "timedelta(days=10000000000) is out of range"),
    ("timedelta(weeks=1e300)", "is out of range"),
    ("timedelta(minutes='5')", "timedelta() needs numbers (got '5')"),
    ("timedelta(fortnights=1)", "timedelta() takes no 'fortnights'"),
    ("10**10**10", "10 ** 10000000000 is out of range"),
    ("1/0", "cannot compute 1 / 0: division by zero"),
])
def test_out_of_range_schedules_are_refused_with_their_line(tmp_path, expr, reason):
    body = f"with DAG('d',\n         schedule={expr}) as dag: pass\n"
    refused(run_cli("import-dag", str(dag_file(tmp_path, body))), 5, reason)


@pytest.mark.parametrize("expr,reason", [
    ('datetime("2022")', "datetime() needs whole numbers (got '2022')"),
    ("datetime(2022, 13, 1)", "datetime(2022, 13, 1) is not a valid date (month must be in 1..12)"),
    ("datetime(10**6, 1, 1)", "is not a valid date (year 1000000 is out of range)"),
    ("datetime(2022.5, 1, 1)", "datetime() needs whole numbers (got 2022.5)"),
])
def test_invalid_start_dates_are_refused_with_their_line(tmp_path, expr, reason):
    body = f"args = {{'owner': 'me',\n        'start_date': {expr}}}\nwith DAG('d', default_args=args) as dag: pass\n"
    refused(run_cli("import-dag", str(dag_file(tmp_path, body))), 5, reason)


def test_out_of_range_retries_are_refused(tmp_path):
    body = "with DAG('d', default_args={'retries': 10**30}) as dag: pass\n"
    refused(run_cli("import-dag", str(dag_file(tmp_path, body))), 4, "retries = an integer of 31 digits is out of range")


def test_valid_values_still_map(tmp_path):
    body = ("def f(): ...\ndef g(r): ...\n"
            "args = dict(retries=2, retry_delay=timedelta(seconds=30 * 2), start_date=datetime(year=999, month=1, day=2))\n"
            "with DAG('d', schedule=timedelta(minutes=3 * 5), default_args=args) as dag:\n"
            "    a = PythonOperator(task_id='a', python_callable=f)\n"
            "    b = PythonOperator(task_id='b', python_callable=g)\n    a >> b\n")
    res = run_cli("import-dag", str(dag_file(tmp_path, body)))
    assert res.returncode == 0, res.stderr
    cfg = tomllib.loads(res.stdout)
    assert cfg["window"]["size"] == "15m" and cfg["defaults"] == {"retries": 2, "retry_delay": "1m"}
    assert "--from 0999-01-02T00:00:00Z" in res.stdout


def test_unreadable_dag_files_are_refused_in_one_line(tmp_path):
    deep = tmp_path / "deep.py"
    deep.write_text("x = " + "+".join(["1"] * 5000) + "\n")
    res = run_cli("import-dag", str(deep))
    assert res.returncode == 2 and "nested too deeply" in res.stderr and "Traceback" not in res.stderr, res.stderr
    latin = tmp_path / "latin.py"
    latin.write_bytes(b"# caf\xe9\n")
    res = run_cli("import-dag", str(latin))
    assert res.returncode == 2 and "not valid UTF-8" in res.stderr and "Traceback" not in res.stderr, res.stderr


COUNTED = '''
import json

with open({counter!r}, "a") as fh:  # a side effect of running the file's top level
    fh.write("ran\\n")

from airflow import DAG
from airflow.operators.python import PythonOperator


def fetch():
    return [{{"v": 1}}]


def store(records):
    with open({sink!r}, "a") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\\n")


with DAG("counted", schedule_interval="* * * * *") as dag:
    a = PythonOperator(task_id="fetch", python_callable=fetch)
    b = PythonOperator(task_id="store", python_callable=store)
    a >> b
'''


def test_validate_and_run_import_a_dag_file_once(tmp_path):
    counter, sink = tmp_path / "ran.txt", tmp_path / "stored.jsonl"
    dag = tmp_path / "counted_dag.py"
    dag.write_text(COUNTED.format(counter=str(counter), sink=str(sink)))
    res = run_cli("import-dag", str(dag), "-o", str(tmp_path / "counted.toml"))
    assert res.returncode == 0, res.stderr
    assert not counter.exists()  # import-dag reads the file, never runs it
    state = f"daemon.state_dir={tmp_path / 'state'}"
    res = run_cli("validate", "-c", str(tmp_path / "counted.toml"), "--set", state)
    assert res.returncode == 0, res.stderr
    assert counter.read_text() == "ran\n"
    fast = ["--set", state, "--set", "window.size=1s", "--set", "window.idle_timeout=300ms",
            "--set", "sources.fetch.interval=1s"]
    with Daemon(tmp_path / "counted.toml", tmp_path, *fast) as d:
        wait_until(lambda: read_jsonl(sink), 30, what="a stored window")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr
    assert counter.read_text() == "ran\nran\n"  # once by validate, once by run
