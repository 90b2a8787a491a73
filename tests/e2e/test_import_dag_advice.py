"""`rtstream import-dag` converts a DAG whose tasks pass rows, and for any other DAG says plainly that it is
better run as it is (`rtstream run --dags`) and why, one reason per construct with its line, writing no
config (exit 2): a config made of it would run with another meaning. Corpus DAGs written by others."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.support import run_cli

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "compat" / "dags"
FIXTURES = ROOT / "tests" / "fixtures"


def advice(path: Path, tmp_path: Path) -> list[str]:
    out = tmp_path / "out.toml"
    done = run_cli("import-dag", str(path), "-o", str(out))
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert not out.exists() and done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[0] == (f"rtstream import-dag: {path} is better run as it is: rtstream run --dags {path} (one run to "
                        f"try: rtstream dags test {path}). No config written: as a pipeline it would run with "
                        "another meaning, because:")
    assert "Traceback" not in done.stderr
    return lines[1:]


def test_bash_tasks_are_run_as_is(tmp_path: Path) -> None:
    assert advice(CORPUS / "airflow-2.10.5" / "tutorial.py", tmp_path) == [
        f"  line {n}: task {t!r} is a BashOperator: it runs a command; a pipeline has no step for it and would skip it"
        for n, t in ((78, "print_date"), (83, "sleep"), (119, "templated"))]


def test_xcom_pushes_pulls_by_key_and_taskflow_are_run_as_is(tmp_path: Path) -> None:
    why = advice(CORPUS / "airflow-2.10.5" / "example_xcom.py", tmp_path)
    assert "  line 36: a task pushes XCom by hand (ti.xcom_push): a pipeline passes only each step's return value" in why
    assert "  line 53: a task pulls XCom by key: a pipeline passes only each step's return value" in why
    assert "  line 34: @task function 'push': a TaskFlow task, which import-dag does not read" in why
    assert len(why) == 9


def test_branches_and_short_circuits_are_run_as_is(tmp_path: Path) -> None:
    why = advice(CORPUS / "constructs" / "branching.py", tmp_path)
    assert any("a branch picks which tasks run; a pipeline runs every stage on every window" in w for w in why), why
    why = advice(CORPUS / "airflow-2.10.5" / "example_short_circuit_operator.py", tmp_path)
    assert any("is a ShortCircuitOperator: it can skip the tasks after it" in w for w in why), why


def test_sensors_trigger_rules_loops_and_mapping_are_run_as_is(tmp_path: Path) -> None:
    why = advice(CORPUS / "airflow-2.10.5" / "example_sensors.py", tmp_path)
    assert "  line 98: task 'wait_for_file' is a FileSensor: a sensor waits for something outside; a pipeline never " \
           "waits" in why
    why = advice(CORPUS / "constructs" / "trigger_rules.py", tmp_path)
    assert "  line 62: tasks made in a loop: import-dag reads one task where the loop makes several" in why
    assert any("(computed id) has a trigger_rule" in w for w in why), why
    why = advice(CORPUS / "airflow-2.10.5" / "example_dynamic_task_mapping_with_no_taskflow_operators.py", tmp_path)
    assert any("dynamic task mapping (.expand)" in w for w in why), why


def test_a_provider_operator_and_a_dag_of_empty_tasks_are_run_as_is(tmp_path: Path) -> None:
    why = advice(FIXTURES / "dags_bridge" / "sql_query.py", tmp_path)
    assert why == ["  line 9: task 'query' is a SQLExecuteQueryOperator: it acts by side effect (not rows); a pipeline "
                   "has no step for it and would skip it"]
    why = advice(CORPUS / "airflow-2.10.5" / "example_branch_labels.py", tmp_path)
    assert why == ["  line 1: no PythonOperator task: nothing in it passes rows, which is what a pipeline does"]


def test_a_middle_task_that_returns_nothing_is_run_as_is(tmp_path: Path) -> None:
    dag = tmp_path / "side.py"
    dag.write_text(
        "from datetime import timedelta\nfrom airflow import DAG\nfrom airflow.operators.python import PythonOperator\n\n"
        "def fetch():\n    return [1, 2]\n\ndef notify():\n    print('done')\n\ndef store(rows):\n    pass\n\n"
        "with DAG('side', schedule=timedelta(minutes=5)) as dag:\n"
        "    a = PythonOperator(task_id='fetch', python_callable=fetch)\n"
        "    b = PythonOperator(task_id='notify', python_callable=notify)\n"
        "    c = PythonOperator(task_id='store', python_callable=store)\n"
        "    a >> b >> c\n")
    assert advice(dag, tmp_path) == [
        "  line 16: task 'notify' calls notify(), which returns nothing (it acts by side effect): in a pipeline the "
        "steps after it would get no rows"]


def test_dags_whose_tasks_pass_rows_still_convert(tmp_path: Path) -> None:
    for name in ("seed_dag.py", "xcom_dag.py"):
        out = tmp_path / f"{name}.toml"
        done = run_cli("import-dag", str(FIXTURES / name), "-o", str(out))
        assert done.returncode == 0, done.stderr
        assert tomllib.loads(out.read_text())["pipeline"]["flow"] == "fetch_data >> process_data >> store_data"
        assert "better run as it is" not in done.stderr
