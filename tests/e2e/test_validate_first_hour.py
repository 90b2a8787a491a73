"""`rtstream validate` refuses what `run` would fail on (issue 28): an optional package a component
needs and this Python lacks, a duration without a unit, a config path given without -c; and
`backfill --to now` works as the config import-dag writes suggests. The real `rtstream` process.

A package is made missing by a folder on PYTHONPATH whose package of that name fails to import,
as an absent or broken install does.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.data import BASE_MS, make_events, write_lines
from tests.support import ROOT, run_cli, to_toml, write_config

PG = "postgresql://rt:pw@127.0.0.1:5/db"


def hide(tmp_path, *packages):
    """A PYTHONPATH on which each of `packages` fails to import."""
    shadow = tmp_path / "shadow"
    for name in packages:
        (shadow / name).mkdir(parents=True)
        (shadow / name / "__init__.py").write_text(f"raise ImportError('No module named {name}')\n")
    return {"PYTHONPATH": str(shadow)}


def base(tmp_path, **sections):
    doc = {
        "pipeline": {"name": "deps", "flow": "events >> per_user >> out"},
        "window": {"size": "5m"},
        "sources": {"events": {"type": "generator", "count": 10}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}}},
        "sinks": {"out": {"type": "stdout"}},
        "daemon": {"state_dir": str(tmp_path / "state")},
    }
    doc.update(sections)
    return doc


def needs_everything(tmp_path):
    return write_config(tmp_path / "rt.toml", base(
        tmp_path,
        pipeline={"name": "deps", "flow": "orders >> enrich >> per_user >> [db, lake]"},
        sources={"orders": {"type": "sql", "dsn": PG, "query": "SELECT * FROM o WHERE id > :cursor",
                            "cursor_field": "id"}},
        stages={"enrich": {"type": "lookup", "key": "store", "from": "postgres", "dsn": PG,
                           "query": "SELECT * FROM stores WHERE id = :key"},
                "per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}}},
        sinks={"db": {"type": "postgres", "dsn": PG, "table": "counts"},
               "lake": {"type": "s3", "bucket": "lake", "endpoint_url": "http://127.0.0.1:5"}}))


def hint(extra):
    return f"pip install 'rtstream[{extra}]' (from a clone: pip install -e '.[{extra}]')"


EXPECTED = [
    f"  sources.orders.dsn: a PostgreSQL dsn needs asyncpg, which is not installed: {hint('postgres')}",
    f"  stages.enrich.from: from = \"postgres\" needs asyncpg, which is not installed: {hint('postgres')}",
    f"  sinks.db.type: the postgres sink needs asyncpg, which is not installed: {hint('postgres')}",
    f"  sinks.lake.type: the s3 sink needs aiobotocore, which is not installed: {hint('s3')}",
    f"  sinks.lake.format: format = \"parquet\" (the default) needs pyarrow, which is not installed: {hint('parquet')}",
]


@pytest.mark.parametrize("command", ["validate", "run"])
def test_every_missing_package_is_named_with_its_key_and_pip_command(tmp_path, command):
    cfg = needs_everything(tmp_path)
    res = run_cli(command, "-c", str(cfg), env=hide(tmp_path, "asyncpg", "pyarrow", "aiobotocore"))
    assert res.returncode == 2, res.stderr
    assert res.stderr.splitlines() == [f"rtstream: config {cfg} refused:", *EXPECTED]


def test_the_same_config_validates_where_the_packages_are_installed(tmp_path):
    res = run_cli("validate", "-c", str(needs_everything(tmp_path)))
    assert res.returncode == 0, res.stderr
    assert "sinks" in res.stdout and "lake" in res.stdout


def test_an_ndjson_s3_sink_does_not_need_pyarrow(tmp_path):
    cfg = write_config(tmp_path / "rt.toml", base(tmp_path, sinks={"out": {
        "type": "s3", "bucket": "lake", "endpoint_url": "http://127.0.0.1:5", "format": "ndjson"}}))
    res = run_cli("validate", "-c", str(cfg), env=hide(tmp_path, "pyarrow"))
    assert res.returncode == 0, res.stderr


def test_a_yaml_config_without_pyyaml_says_how_to_install_it(tmp_path):
    path = tmp_path / "rt.yaml"
    path.write_text("pipeline: {name: y, flow: a >> b}\n")
    res = run_cli("validate", "-c", str(path), env=hide(tmp_path, "yaml"))
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        f"rtstream: config refused: {path}: a YAML config needs PyYAML, which is not installed: {hint('yaml')}"]


def test_uvloop_asked_for_and_missing_is_refused(tmp_path):
    hidden = hide(tmp_path, "uvloop") if importlib.util.find_spec("uvloop") else {}
    cfg = write_config(tmp_path / "rt.toml", base(tmp_path, daemon={"state_dir": str(tmp_path / "s"),
                                                                    "event_loop": "uvloop"}))
    res = run_cli("validate", "-c", str(cfg), env=hidden)
    assert res.returncode == 2
    assert res.stderr.splitlines()[1:] == [
        f"  daemon.event_loop: event_loop = \"uvloop\" needs uvloop, which is not installed: {hint('fast')}"]
    ok = run_cli("validate", "-c", str(cfg), "--set", 'daemon.event_loop="auto"', env=hidden)
    assert ok.returncode == 0, ok.stderr


def test_a_duration_without_a_unit_is_refused_with_its_key(tmp_path):
    doc = base(tmp_path)
    text = to_toml(doc).replace('size = "5m"', "size = 5")
    assert "size = 5\n" in text
    (tmp_path / "rt.toml").write_text(text)
    res = run_cli("validate", "-c", str(tmp_path / "rt.toml"))
    assert res.returncode == 2
    assert res.stderr.splitlines()[1:] == ["  window.size: a duration needs a unit, e.g. 5s, 5m, 1h (got 5)"]
    res = run_cli("validate", "-c", str(write_config(tmp_path / "ok.toml", doc)), "--set", "window.lateness=30",
                  "--set", "daemon.shutdown_grace='10'")
    assert res.returncode == 2
    assert res.stderr.splitlines()[1:] == [
        "  window.lateness: a duration needs a unit, e.g. 5s, 5m, 1h (got 30)",
        "  daemon.shutdown_grace: a duration needs a unit, e.g. 5s, 5m, 1h (got '10')"]
    zero = run_cli("validate", "-c", str(tmp_path / "ok.toml"), "--set", "window.lateness=0")
    assert zero.returncode == 0, zero.stderr  # zero is zero in every unit
    assert "lateness 0s" in zero.stdout


@pytest.mark.parametrize("command", ["run", "validate", "backfill"])
def test_a_config_path_without_dash_c_gets_one_line(tmp_path, command):
    res = run_cli(command, "base.toml")
    assert res.returncode == 2 and res.stdout == ""
    if command == "backfill":  # --from/--to are required first: argparse says so
        assert "--from" in res.stderr
        return
    assert res.stderr.splitlines() == [f"rtstream {command}: give the config with -c: rtstream {command} -c base.toml"]


def test_backfill_to_now_as_the_imported_config_suggests(tmp_path):
    imported = run_cli("import-dag", str(ROOT / "tests" / "fixtures" / "seed_dag.py"))
    assert imported.returncode == 0, imported.stderr
    assert "--to now" in imported.stdout and "<now>" not in imported.stdout
    events = make_events(200, 600, seed=3)
    write_lines(tmp_path / "in.jsonl", events)
    cfg = write_config(tmp_path / "rt.toml", base(
        tmp_path, sources={"events": {"type": "file", "path": str(tmp_path / "in.jsonl")}},
        sinks={"out": {"type": "file", "path": str(tmp_path / "out")}}))
    res = run_cli("backfill", "-c", str(cfg), "--from", str(BASE_MS - 3_600_000), "--to", "now")
    assert res.returncode == 0, res.stderr
    assert "records read       200" in res.stdout.splitlines()
    bad = run_cli("backfill", "-c", str(cfg), "--from", "yesterday", "--to", "now")
    assert bad.returncode == 2
    assert "now)" in bad.stderr and "Traceback" not in bad.stderr
