"""ExternalPythonOperator / @task.external_python and PythonVirtualenvOperator / @task.virtualenv run the
callable in another interpreter as Airflow 2.10 does: its source (decorator removed) in a script,
arguments and result pickled, `virtualenv_string_args`, the serialisable context keys only,
skip_on_exit_code, the callable's exception text on failure. PythonVirtualenvOperator needs virtualenv
(refused at load without it, Airflow's message) and installs its requirements with pip; a requirement
pip cannot install fails the task naming the requirements."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import venv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rtstream.airflow.dag_run import DagRun, RunResult
from rtstream.airflow.dagbag import load

pytestmark = pytest.mark.usefixtures("stand_in")
AT = datetime(2024, 6, 3, tzinfo=UTC)

EXTERNAL = '''
import sys
from datetime import datetime
from airflow import DAG
from airflow.decorators import task
from airflow.operators.python import ExternalPythonOperator

PY = {python!r}

def plain(a, b, ds=None, logical_date="not passed", dag="not passed"):
    import sys
    return {{"sum": a + b, "ds": ds, "logical_date": logical_date, "dag": dag, "strings": virtualenv_string_args,
            "exe": sys.executable}}

def exits(code):
    import sys
    sys.exit(code)

def breaks():
    raise ValueError("broken in the other interpreter")

with DAG("ext", schedule=None, start_date=datetime(2024, 1, 1)):
    ExternalPythonOperator(task_id="plain", python=PY, python_callable=plain, op_args=[1], op_kwargs={{"b": 2}},
                           string_args=["x", "y"])
    ExternalPythonOperator(task_id="skips", python=PY, python_callable=exits, op_args=[3], skip_on_exit_code=3)
    ExternalPythonOperator(task_id="fails", python=PY, python_callable=exits, op_args=[4], skip_on_exit_code=3)
    ExternalPythonOperator(task_id="raises", python=PY, python_callable=breaks)
    ExternalPythonOperator(task_id="missing", python="/no/such/python", python_callable=breaks)

    @task.external_python(python=PY, multiple_outputs=True)
    def decorated(n: int, **context):
        return {{"double": n * 2, "keys": sorted(k for k in context if k in ("ds", "ts", "dag", "ti"))}}

    decorated(21)
'''


@pytest.fixture(scope="module")
def other_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An interpreter that is not rtstream's: a fresh venv, without pip."""
    where = tmp_path_factory.mktemp("ext")
    venv.EnvBuilder(with_pip=False).create(where)
    return where / "bin" / "python"


def run(tmp_path: Path, text: str, dag_id: str) -> tuple[RunResult, dict[str, tuple[str | None, int]]]:
    (tmp_path / f"{dag_id}.py").write_text(text)
    bag = load(tmp_path / f"{dag_id}.py")
    assert bag.import_errors == {} and bag.refused_tasks(bag.dags[dag_id]) == []
    r = asyncio.run(DagRun(bag.dags[dag_id], AT).run())
    return r, {ti.task_id: (ti.state, ti.try_number) for ti in r.task_instances}


def test_external_python_runs_the_callable_in_the_other_interpreter(tmp_path: Path, other_python: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    r, s = run(tmp_path, EXTERNAL.format(python=str(other_python)), "ext")
    assert "Process returned non-zero exit status 1.\nbroken in the other interpreter" in caplog.text
    assert "Python Path '/no/such/python' must exists" in caplog.text
    assert s == {"plain": ("success", 1), "skips": ("skipped", 1), "fails": ("failed", 1), "raises": ("failed", 1),
                 "missing": ("failed", 1), "decorated": ("success", 1)}
    got = r.xcoms.of("plain", -1)["return_value"]
    assert got == {"sum": 3, "ds": "2024-06-03", "logical_date": "not passed", "dag": "not passed",
                   "strings": ["x", "y"], "exe": str(other_python)}
    # the decorator is gone from the source; multiple_outputs; **context gets the string keys only
    assert r.xcoms.of("decorated", -1) == {"double": 42, "keys": ["ds", "ts"],
                                           "return_value": {"double": 42, "keys": ["ds", "ts"]}}


def test_a_callable_that_asks_for_airflow_objects_fails_with_the_reason(tmp_path: Path, other_python: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Where Airflow is importable in the target, Airflow pickles its own `dag`; rtstream cannot."""
    site = next((other_python.parent.parent / "lib").glob("python3*/site-packages"))
    (site / "airflow").mkdir()
    (site / "airflow" / "__init__.py").write_text("")
    try:
        text = EXTERNAL.format(python=str(other_python)).replace(
            'ExternalPythonOperator(task_id="skips"', 'ExternalPythonOperator(task_id="asks", python=PY, '
            'python_callable=plain, op_args=[1, 2])\n    ExternalPythonOperator(task_id="skips"')
        r, s = run(tmp_path, text, "ext")
        assert s["asks"] == ("failed", 1)
        assert "ExternalPythonOperator asks: the callable asks for dag: Airflow pickles its own objects" in caplog.text
    finally:
        (site / "airflow" / "__init__.py").unlink()
        (site / "airflow").rmdir()


def test_virtualenv_operator_needs_virtualenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    if importlib.util.find_spec("virtualenv") is not None:
        pytest.skip("virtualenv is installed here")
    monkeypatch.setenv("PATH", str(tmp_path))
    (tmp_path / "v.py").write_text('''
from datetime import datetime
from airflow import DAG
from airflow.operators.python import PythonVirtualenvOperator

def f():
    return 1

with DAG("v", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonVirtualenvOperator(task_id="v", python_callable=f, requirements=["colorama==0.4.0"])
''')
    error = next(iter(load(tmp_path / "v.py").import_errors.values()))
    assert error.endswith("AirflowException: PythonVirtualenvOperator requires virtualenv, please install it.")


@pytest.fixture(scope="module")
def with_virtualenv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """virtualenv installed beside (not into) rtstream's venv, from pip's configured index and cache."""
    target = tmp_path_factory.mktemp("virtualenv_pkg")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(target), "virtualenv"],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.skip(f"virtualenv cannot be installed here: {done.stderr.strip()[-300:]}")
    return target


def test_virtualenv_operator_installs_its_requirements(tmp_path: Path, with_virtualenv: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.syspath_prepend(str(with_virtualenv))
    monkeypatch.setenv("PYTHONPATH", str(with_virtualenv) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cache = tmp_path / "cache"
    r, s = run(tmp_path, f'''
from datetime import datetime
from airflow import DAG
from airflow.decorators import task

with DAG("venv", schedule=None, start_date=datetime(2024, 1, 1)):
    @task.virtualenv(requirements=["colorama==0.4.0"], system_site_packages=False, venv_cache_path={str(cache)!r})
    def colours(word):
        import colorama
        return colorama.__version__ + " " + word

    @task.virtualenv(requirements=["rtstream-no-such-package==0.0.1"], system_site_packages=False)
    def impossible():
        return 1

    colours("red") >> colours.override(task_id="again")("blue")
    impossible()
''', "venv")
    assert (s["colours"], s["again"], s["impossible"]) == (("success", 1), ("success", 1), ("failed", 1))
    assert r.xcoms.of("colours", -1) == {"return_value": "0.4.0 red"}
    assert r.xcoms.of("again", -1) == {"return_value": "0.4.0 blue"}
    assert ("pip installing the task's requirements (rtstream-no-such-package==0.0.1), with pip's configuration "
            "and cache on this machine, failed (exit 1)") in caplog.text
    assert len(list(cache.glob("venv-*/install_complete_marker.json"))) == 1  # the second task reused it
