"""The real `rtstream dags test --json` / `rtstream dags list` processes on the fixture DAGs: stdout is
JSON only, one object per task instance then the run; exit 0 / 1 / 2; one line for a file that fails."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import orjson

from tests.support import run_cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DAGS, BROKEN = FIXTURES / "dags", FIXTURES / "dags_broken"


def dags_test(path: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli("dags", "test", str(path), "--json", "--at", "2024-03-05T07:30:00+00:00", *extra, env=env)


def rows(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in done.stdout.splitlines()]  # every line must be JSON


def test_a_taskflow_dag_runs_and_prints_its_task_instances() -> None:
    done = dags_test(DAGS / "taskflow_chain.py")
    assert done.returncode == 0, done.stderr
    assert rows(done) == [
        {"dag_id": "taskflow_chain", "task_id": "extract", "map_index": -1, "state": "success", "tries": 1,
         "xcom": {"a": 1, "b": 2, "return_value": {"a": 1, "b": 2}}},
        {"dag_id": "taskflow_chain", "task_id": "transform", "map_index": -1, "state": "success", "tries": 1,
         "xcom": {"return_value": 3}},
        {"dag_id": "taskflow_chain", "task_id": "load", "map_index": -1, "state": "success", "tries": 1,
         "xcom": {"total": 30, "a_again": 1, "return_value": {"total": 30, "a_again": 1}}},
        {"dag_id": "taskflow_chain", "run_state": "success"},
    ]


def test_a_failed_run_exits_1_and_names_the_failing_task() -> None:
    done = dags_test(DAGS / "failing.py")
    assert done.returncode == 1
    got = {r["task_id"]: r["state"] for r in rows(done) if "task_id" in r}
    assert got == {"first": "success", "second": "failed", "third": "upstream_failed", "fourth": "upstream_failed"}
    assert rows(done)[-1] == {"dag_id": "failing", "run_state": "failed"}
    assert "FAILED: failing (failed tasks: second)" in done.stderr
    assert "KeyError: 'missing column'" in done.stderr  # the task's traceback is its log, on stderr


def test_bash_exit_codes_skips_and_output_stay_off_stdout() -> None:
    done = dags_test(DAGS / "bash_ops.py", env={"RTSTREAM_FIXTURE_MARK": "mark"})
    assert done.returncode == 1
    by_id = {r["task_id"]: r for r in rows(done) if "task_id" in r}
    assert by_id["hello"]["xcom"] == {"return_value": "hello world 2024-03-05"}
    assert by_id["env_only"]["xcom"] == {"return_value": "hi nohome"}  # env replaces the environment
    assert by_id["env_appended"]["xcom"] == {"return_value": "hi mark"}
    assert by_id["in_cwd"]["xcom"] == {"return_value": str(DAGS)}
    assert by_id["skip_99"]["state"] == by_id["skip_3"]["state"] == "skipped"
    assert by_id["exit_2"]["state"] == "failed"
    assert by_id["from_function"]["xcom"] == {"return_value": "20240305-3"}
    assert "about to fail" in done.stderr and "first" in done.stderr  # the command's output is its log


def test_one_dag_of_a_folder_and_prints_never_reach_stdout() -> None:
    done = dags_test(DAGS, "--dag", "prints_at_import")
    assert done.returncode == 0, done.stderr
    assert rows(done) == [{"dag_id": "prints_at_import", "task_id": "talk", "map_index": -1, "state": "success",
                           "tries": 1, "xcom": {"return_value": "said"}},
                          {"dag_id": "prints_at_import", "run_state": "success"}]
    assert "hello from the top level" in done.stderr and "hello from the task" in done.stderr


def test_files_that_cannot_load_give_one_line_and_exit_2() -> None:
    expected = {
        "exits.py": "exits.py:6: the DAG file called sys.exit(3) at import",
        "raises.py": "raises.py:5: KeyError: 'region'",
        "missing_package.py": "imports 'rtstream_no_such_package_for_tests', which is not installed (pip install rtstream_no_such_package_for_tests)",
        "unsupported_operator.py": "DAG unsupported_operator refused: task upload (S3CreateObjectOperator): "
                                   "rtstream does not run S3CreateObjectOperator",
    }
    for name, line in expected.items():
        done = dags_test(BROKEN / name)
        assert done.returncode == 2, (name, done.stderr)
        assert done.stdout == ""
        assert line in done.stderr, (name, done.stderr)
        assert "Traceback" not in done.stderr, name
        assert "python_path" not in done.stderr
    debug = dags_test(BROKEN / "raises.py", "--debug")
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_dags_list_shows_dags_schedules_and_how_each_task_runs() -> None:
    done = run_cli("dags", "list", str(DAGS / "two_dags.py"))
    assert done.returncode == 0, done.stderr
    assert "first_of_two" in done.stdout and "second_of_two" in done.stdout
    refused = run_cli("dags", "list", str(BROKEN / "unsupported_operator.py"))
    assert "upload" in refused.stdout and "REFUSED: rtstream does not run S3CreateObjectOperator" in refused.stdout
    assert "native" in refused.stdout  # task a
    missing = run_cli("dags", "test", str(DAGS), "--dag", "nope")
    assert missing.returncode == 2 and "no DAG 'nope'" in missing.stderr
