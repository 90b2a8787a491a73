"""A sink's `asset = "URI"` at load (Airflow's URI rules, [dags] needed: dotted-key errors, one line and
exit 2 from the CLI), and the event it keeps: once per (pipeline, sink, window), its consumers queued,
named as the DAG files name the asset."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from rtstream.airflow.dagbag import load
from rtstream.config.load import load_settings
from rtstream.dags.asset_triggers import AssetTriggers
from rtstream.dags.pipeline_assets import PipelineAssets
from rtstream.dags.store import RunStore
from rtstream.model.errors import ConfigError
from tests.support import write_config

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "asset_edges" / "chain.py"
URI = "rtstream://clicks/per_user"


def config(tmp_path: Path, asset: str, with_dags: bool = True) -> Path:
    (tmp_path / "dags").mkdir(exist_ok=True)
    shutil.copy(FIXTURE, tmp_path / "dags" / FIXTURE.name)
    return write_config(tmp_path / "p.toml", {
        "pipeline": {"name": "clicks", "flow": "events >> table"},
        "window": {"size": "1m"},
        "sources": {"events": {"type": "file", "path": str(tmp_path / "in.jsonl")}},
        "sinks": {"table": {"type": "stdout", "asset": asset}},
        **({"dags": {"path": "dags"}} if with_dags else {}),
        "daemon": {"state_dir": "state"},
    })


@pytest.fixture(autouse=True)
def chain_out(tmp_path, monkeypatch):
    monkeypatch.setenv("RTSTREAM_CHAIN_OUT", str(tmp_path / "chain.jsonl"))


def problems(path: Path) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path, [])
    return dict(info.value.problems)


def test_a_valid_asset_loads_and_is_stripped(tmp_path):
    settings = load_settings(config(tmp_path, f"  {URI} "), [])
    assert settings.components["table"].config.asset == URI


@pytest.mark.parametrize("uri, reason", [
    ("", "cannot be empty"), ("   ", "cannot be empty"), ("s3://bücket/x", "ASCII"),
    ("airflow://x", "'airflow' is reserved"), ("a\nb", "control characters"), ("x" * 1501, "1500 characters"),
])
def test_a_uri_airflow_refuses_is_refused_at_its_key(tmp_path, uri, reason):
    got = problems(config(tmp_path, uri))
    assert list(got) == ["sinks.table.asset"] and reason in got["sinks.table.asset"], got


def test_an_asset_without_dags_is_refused(tmp_path):
    got = problems(config(tmp_path, URI, with_dags=False))
    assert "[dags] path" in got["sinks.table.asset"], got


def test_the_cli_says_it_at_its_key_and_exits_2(tmp_path):
    path = config(tmp_path, URI, with_dags=False)
    (tmp_path / "in.jsonl").write_text("")
    proc = subprocess.run([sys.executable, "-m", "rtstream", "validate", "-c", str(path)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "RTSTREAM_CHAIN_OUT": str(tmp_path / "o")})
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    # the refusal's heading, then the one problem: its dotted key and what to do
    assert len(lines) == 2 and lines[1].strip().startswith("sinks.table.asset: ") and "[dags] path" in lines[1], \
        proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_event_per_window_once_its_consumer_queued_under_the_dags_name(tmp_path):
    dags = list(load(FIXTURE).dags.values())
    store = RunStore(tmp_path / "dag_runs.db")
    triggers = AssetTriggers(dags, store)
    told: list[list[str]] = []
    triggers.on_queued = told.append
    assets = PipelineAssets(triggers, dags, store)
    w1 = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 1, tzinfo=UTC))
    w2 = (w1[1], datetime(2026, 1, 1, 0, 2, tzinfo=UTC))
    assert assets.written(URI, "clicks", "table", w1, None, 3) is True
    assert assets.written(URI, "clicks", "table", w1, None, 5) is False  # a replay: no second event
    assert assets.written(URI, "clicks", "table", w1, "k1", 2) is True  # a session of another key
    assert assets.written(URI, "clicks", "other_sink", w1, None, 3) is True
    assert assets.written(URI, "clicks", "table", w2, None, 1) is True
    assert assets.written("s3://nobody/consumes", "clicks", "table", w1, None, 1) is True
    db = sqlite3.connect(tmp_path / "dag_runs.db")
    rows = db.execute("SELECT name, uri, source_dag_id, source_run_id, source_task_id, interval_start, extra "
                      "FROM asset_event ORDER BY seq").fetchall()
    assert len(rows) == 5
    assert rows[0][:6] == ("clicks_per_user", URI, "clicks", "window__2026-01-01T00:00:00Z__2026-01-01T00:01:00Z",
                           "table", w1[0].isoformat())
    assert orjson.loads(rows[0][6]) == {"pipeline": "clicks", "sink": "table", "window_start": "2026-01-01T00:00:00Z",
                                        "window_end": "2026-01-01T00:01:00Z", "rows": 3}
    assert rows[4][0] == "s3://nobody/consumes"  # no DAG names it: its name is its URI
    assert db.execute("SELECT target_dag_id, name, uri FROM asset_queue").fetchall() == [
        ("dag_a", "clicks_per_user", URI)]
    assert told == [["dag_a"]] * 4
    run = triggers.take("dag_a", datetime.now(UTC))
    assert run is not None and run.run_type == "dataset_triggered" and (run.interval_start, run.interval_end) == (
        w1[0], w2[1])
    assert len(triggers.consumed("dag_a", run.run_id)) == 4


def test_an_exactly_once_sink_cannot_announce_an_asset(tmp_path):
    (tmp_path / "dags").mkdir(exist_ok=True)
    shutil.copy(FIXTURE, tmp_path / "dags" / FIXTURE.name)
    path = write_config(tmp_path / "p.toml", {
        "pipeline": {"name": "clicks", "flow": "events >> out"},
        "window": {"size": "1m"},
        "sources": {"events": {"type": "kafka", "bootstrap_servers": "127.0.0.1:9", "topics": ["t"], "group_id": "g"}},
        "sinks": {"out": {"type": "kafka", "bootstrap_servers": "127.0.0.1:9", "topic": "o", "exactly_once": True,
                          "asset": URI}},
        "dags": {"path": "dags"},
        "daemon": {"state_dir": "state"},
    })
    got = problems(path)
    assert list(got) == ["sinks.out.asset"] and "exactly_once" in got["sinks.out.asset"], got
