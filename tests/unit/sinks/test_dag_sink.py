"""The `dag` sink at load (the DAG must be one of [dags] path, runnable, without a task named like the
pipeline: dotted-key errors) and the pieces it stands on: the rows' digest and `pipeline_rows`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rtstream.airflow.dag_run import topological_order
from rtstream.airflow.dagbag import load
from rtstream.airflow.xcom import RunXComs, TaskInstance
from rtstream.config.load import load_settings
from rtstream.dags.window_runs import rows_digest
from rtstream.model.errors import ConfigError
from tests.support import write_config

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "dag_sink" / "per_window.py"


def config(tmp_path: Path, dag: str = "per_window", name: str = "clicks", with_dags: bool = True) -> Path:
    (tmp_path / "dags").mkdir(exist_ok=True)
    shutil.copy(FIXTURE, tmp_path / "dags" / FIXTURE.name)
    return write_config(tmp_path / "p.toml", {
        "pipeline": {"name": name, "flow": "events >> to_dag"},
        "window": {"size": "1m"},
        "sources": {"events": {"type": "file", "path": str(tmp_path / "in.jsonl")}},
        "sinks": {"to_dag": {"type": "dag", "dag": dag}},
        **({"dags": {"path": "dags"}} if with_dags else {}),
        "daemon": {"state_dir": "state"},
    })


@pytest.fixture(autouse=True)
def window_out(tmp_path, monkeypatch):
    monkeypatch.setenv("RTSTREAM_WINDOW_OUT", str(tmp_path))


def problems(path: Path) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    return exc.value.problems


def test_a_dag_of_the_daemon_loads(tmp_path):
    settings = load_settings(config(tmp_path))
    assert settings.components["to_dag"].config.dag == "per_window"


def test_an_unknown_dag_is_refused_with_its_key_and_the_dags_there_are(tmp_path):
    got = problems(config(tmp_path, dag="per_windo"))
    assert got == [("sinks.to_dag.dag", f"no DAG 'per_windo' in {tmp_path / 'dags'} (DAGs: per_window)")]


def test_a_dag_sink_without_dags_is_refused(tmp_path):
    got = problems(config(tmp_path, with_dags=False))
    assert got == [("sinks.to_dag.dag", 'a dag sink needs the DAGs of this daemon: add [dags] path = "..."')]


def test_a_pipeline_named_like_a_task_of_the_dag_is_refused(tmp_path):
    [(key, reason)] = problems(config(tmp_path, name="check"))
    assert key == "sinks.to_dag.dag" and "has a task 'check'" in reason


def test_the_rows_digest_ignores_order_and_sees_any_change():
    a = [{"user_id": "u1", "events": 3}, {"events": 4, "user_id": "u2"}]
    assert rows_digest(a) == rows_digest(list(reversed(a)))
    assert rows_digest(a) != rows_digest([{"user_id": "u1", "events": 3}])
    assert rows_digest(a) != rows_digest([{"user_id": "u1", "events": 3}, {"user_id": "u2", "events": 5}])


def test_pipeline_rows_is_an_argument_with_no_upstream_task(tmp_path):
    dag = load(FIXTURE).dags["per_window"]
    assert topological_order(dag) == ["check", "store"]
    assert dag.task_dict["check"].upstream_task_ids == set()
    assert dag.task_dict["store"].upstream_task_ids == {"check"}
    xcoms = RunXComs()
    rows = [{"user_id": "u1", "events": 3}]
    xcoms.push("clicks", -1, "return_value", rows)
    ti = TaskInstance(dag.task_dict["check"], "window__x", -1, xcoms, None)
    [arg] = dag.task_dict["check"].op_args
    assert arg.resolve({"ti": ti}) == rows
