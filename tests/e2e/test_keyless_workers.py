"""`workers = N` beside a table sink whose rows have no key: each worker would write its share of a
window and replace (delete) the others', so the config is refused at load with one clear line
(exit 2) and what to set instead; rows with a key, key_columns or mode = "insert" are accepted."""

from __future__ import annotations

import pytest

from tests.support import run_cli, write_config


def config(tmp_path, flow: str, stages: dict, sink: dict) -> object:
    kafka = {"type": "kafka", "bootstrap_servers": "127.0.0.1:1", "group_id": "g", "assignment": "static"}
    doc = {
        "pipeline": {"name": "w", "flow": flow},
        "window": {"size": "1m"},
        "sources": {"orders": {**kafka, "topics": ["orders"]}, "payments": {**kafka, "topics": ["payments"]}},
        "stages": stages,
        "sinks": {"db": sink},
        "daemon": {"state_dir": str(tmp_path / "state"), "workers": 2},
    }
    if "payments" not in flow:
        del doc["sources"]["payments"]
    return write_config(tmp_path / "w.toml", doc)


JOIN = {"match": {"type": "join", "left": "orders", "right": "payments", "on": "order_id"}}
PER_USER = {"per_user": {"type": "aggregate", "key": "user", "aggregates": {"n": "count()"}}}


@pytest.mark.parametrize("sink", [{"type": "sqlite", "path": "out.db"},
                                  {"type": "postgres", "dsn": "postgresql://u@127.0.0.1:1/d", "table": "t"}],
                         ids=["sqlite", "postgres"])
def test_a_join_into_a_table_sink_with_workers_is_refused_in_one_line(tmp_path, sink):
    res = run_cli("validate", "-c", str(config(tmp_path, "[orders, payments] >> match >> db", JOIN, sink)))
    assert res.returncode == 2, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("rtstream: config "), res.stderr
    assert lines[1] == ("  daemon.workers: daemon.workers = 2: the rows of sink(s) db have no key, so each window's "
                        "rows are replaced whole, and each worker writes only its share of a window (one would "
                        "delete another's); give the sink key_columns unique per row, or mode = \"insert\" (a "
                        "replay then appends again), or run one worker")
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("case", ["key_columns", "insert", "aggregate"])
def test_rows_with_a_key_or_appended_are_accepted_with_workers(tmp_path, case):
    sink = {"type": "sqlite", "path": "out.db"}
    flow, stages = "[orders, payments] >> match >> db", JOIN
    if case == "key_columns":
        sink["key_columns"] = ["window_start", "order_id", "payment_id"]
    elif case == "insert":
        sink["mode"] = "insert"
    else:
        flow, stages = "orders >> per_user >> db", PER_USER
    res = run_cli("validate", "-c", str(config(tmp_path, flow, stages, sink)))
    assert res.returncode == 0, res.stderr


def test_a_join_into_a_file_sink_with_workers_is_refused_and_keyed_rows_are_not(tmp_path):
    """A file sink replaces a window's file whole unless its rows have a key: two workers' pairs of one
    window would overwrite each other."""
    files = {"type": "file", "path": str(tmp_path / "out")}
    res = run_cli("validate", "-c", str(config(tmp_path, "[orders, payments] >> match >> db", JOIN, files)))
    assert res.returncode == 2, res.stderr
    assert "the rows of sink(s) db have no key" in res.stderr
    assert "a file sink (db) keeps one window's file per folder: give it mode = \"append\" (a replay then " \
           "appends again), or write these rows to a table sink with key_columns or to Kafka, or run one worker" \
           in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    res = run_cli("validate", "-c", str(config(tmp_path, "orders >> per_user >> db", PER_USER, files)))
    assert res.returncode == 0, res.stderr
    appended = {**files, "mode": "append"}  # the workers' rows add up in the day's file
    res = run_cli("validate", "-c", str(config(tmp_path, "[orders, payments] >> match >> db", JOIN, appended)))
    assert res.returncode == 0, res.stderr
