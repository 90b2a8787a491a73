"""Without the `rtstream[airflow]` extra, a DAG with an operator rtstream does not run natively is refused
at load by every command that loads DAGs (`dags list`, `dags test`, `validate`, `run --dags`): the task,
the operator, its module and the pip command (the extra, and the provider's package), one line each,
exit 2, never a traceback. RTSTREAM_AIRFLOW_BRIDGE=0 makes the refusal certain even where some venv
happens to hold Airflow."""

from __future__ import annotations

from pathlib import Path

from rtstream.airflow.pip_advice import install_command, provider_package
from tests.support import run_cli

DAGS = Path(__file__).resolve().parents[1] / "fixtures" / "dags_bridge"
NO_EXTRA = {"RTSTREAM_AIRFLOW_BRIDGE": "0"}
HTTP_LINE = ("DAG http_call refused: task fetch (HttpOperator): rtstream does not run HttpOperator (from "
             "airflow.providers.http.operators.http) natively; to run it through the real Airflow: "
             "pip install 'rtstream[airflow]' apache-airflow-providers-http")
SQL_LINE = ("DAG sql_query refused: task query (SQLExecuteQueryOperator): rtstream does not run "
            "SQLExecuteQueryOperator (from airflow.providers.common.sql.operators.sql) natively; to run it through "
            "the real Airflow: pip install 'rtstream[airflow]' apache-airflow-providers-common-sql")


def test_the_pip_command_names_the_extra_and_the_provider_package() -> None:
    assert provider_package("airflow.providers.http.operators.http") == "apache-airflow-providers-http"
    assert provider_package("airflow.providers.common.sql.operators.sql") == "apache-airflow-providers-common-sql"
    assert provider_package("airflow.providers.amazon.aws.operators.s3") == "apache-airflow-providers-amazon"
    assert provider_package("airflow.providers.cncf.kubernetes.operators.pod") == \
        "apache-airflow-providers-cncf-kubernetes"
    assert provider_package("airflow.providers.apache.spark.operators.spark_submit") == \
        "apache-airflow-providers-apache-spark"
    assert provider_package("airflow.sensors.external_task") is None
    assert install_command("airflow.operators.email") == "pip install 'rtstream[airflow]'"
    assert install_command("airflow.providers.http.hooks.http", extra_installed=True) == \
        "pip install apache-airflow-providers-http"


def test_dags_test_refuses_with_the_task_the_operator_and_the_pip_command() -> None:
    for name, dag_id, line in (("http_call.py", "http_call", HTTP_LINE), ("sql_query.py", "sql_query", SQL_LINE)):
        done = run_cli("dags", "test", str(DAGS / name), "--dag", dag_id, "--json", "--at", "2024-06-03",
                       env=NO_EXTRA)
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        refusals = [s for s in done.stderr.splitlines() if "refused" in s]
        assert refusals == [f"rtstream: {line}"], done.stderr
        assert "Traceback" not in done.stderr


def test_dags_list_shows_how_each_task_runs_then_refuses() -> None:
    done = run_cli("dags", "list", str(DAGS / "http_call.py"), env=NO_EXTRA)
    assert done.returncode == 2, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith("  ")}
    assert set(rows) == {"fetch", "shout", "call"}
    assert "REFUSED: rtstream does not run HttpOperator" in rows["fetch"]
    assert "pip install 'rtstream[airflow]' apache-airflow-providers-http" in rows["fetch"]
    assert rows["shout"].split()[1:3] == ["PythonOperator", "native"]
    assert f"rtstream: {HTTP_LINE}" in done.stderr.splitlines()
    assert "Traceback" not in done.stderr


def test_validate_refuses_a_dags_config_naming_dags_path(tmp_path: Path) -> None:
    config = tmp_path / "dags.toml"
    config.write_text(f'[dags]\npath = "{DAGS / "sql_query.py"}"\n')
    done = run_cli("validate", "-c", str(config), env=NO_EXTRA)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"rtstream: config {config} refused: dags.path: {SQL_LINE}"]
    fine = tmp_path / "fine.toml"
    fine.write_text(f'[dags]\npath = "{DAGS / "custom_operator.py"}"\n')
    ok = run_cli("validate", "-c", str(fine), env=NO_EXTRA)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().endswith("custom_operator")


def test_run_dags_does_not_start_with_only_refused_dags(tmp_path: Path) -> None:
    done = run_cli("run", "--dags", str(DAGS / "sql_query.py"), "--set", f'daemon.state_dir="{tmp_path}"',
                   env=NO_EXTRA, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "pip install 'rtstream[airflow]' apache-airflow-providers-common-sql" in done.stderr
    assert "cannot start: dags.path" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_hook_of_the_real_airflow_raises_with_the_pip_command_when_called() -> None:
    """A user's BaseOperator subclass runs natively; the real Airflow's BaseHook it calls is not there:
    the call raises (the task fails), it never hands back a placeholder as a connection."""
    done = run_cli("dags", "test", str(DAGS / "custom_operator.py"), "--json", "--at", "2024-06-03",
                   env={**NO_EXTRA, "AIRFLOW_VAR_THRESHOLD": "41"})
    assert done.returncode == 1, done.stderr
    assert '"state":"failed"' in done.stdout
    assert ("BaseHook.get_connection: rtstream does not run BaseHook (from airflow.hooks.base) natively; to run it "
            "through the real Airflow: pip install 'rtstream[airflow]'") in done.stderr


def test_a_taskflow_flavour_rtstream_does_not_run_is_refused_without_a_pip_command(tmp_path: Path) -> None:
    dag = tmp_path / "docker_flavour.py"
    dag.write_text("from datetime import datetime\nfrom airflow.decorators import dag, task\n\n"
                   "@dag(schedule=None, start_date=datetime(2024, 1, 1))\ndef docker_flavour():\n"
                   "    @task.docker(image='python:3.11-slim')\n    def inside():\n        return 1\n"
                   "    inside()\n\ndocker_flavour()\n")
    done = run_cli("dags", "test", str(dag), "--json", env=NO_EXTRA)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == (
        "rtstream: DAG docker_flavour refused: task inside (@task.docker): rtstream does not run @task.docker "
        "(only @task, @task.branch, @task.short_circuit, @task.bash, @task.sensor, @task.virtualenv and "
        "@task.external_python), with or without Airflow installed")


def test_validate_of_a_pipeline_beside_dags_checks_both(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text("")
    config = tmp_path / "both.toml"
    body = (f'[pipeline]\nname = "p"\nflow = "src >> out"\n[window]\ntype = "tumbling"\nsize = "1m"\n'
            f'[sources.src]\ntype = "file"\npath = "{tmp_path / "in.jsonl"}"\n[sinks.out]\ntype = "stdout"\n'
            f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n[dags]\npath = "{DAGS / "sql_query.py"}"\n')
    config.write_text(body)
    done = run_cli("validate", "-c", str(config), env=NO_EXTRA)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"rtstream: config {config} refused: dags.path: {SQL_LINE}"]
    config.write_text(body.replace("sql_query.py", "custom_operator.py"))
    assert run_cli("validate", "-c", str(config), env=NO_EXTRA).returncode == 0
    (tmp_path / "in.jsonl").unlink()  # the pipeline's own checks still run (an input that is not there)
    gone = run_cli("validate", "-c", str(config), env=NO_EXTRA)
    assert gone.returncode == 2 and "sources.src.path: no such file" in gone.stderr
