"""Asset aliases through the real daemon, as Airflow 3 runs them: an event added through
`outlet_events[alias].add(asset, extra)` is an event of that asset (extra, source_aliases), it runs the
DAGs scheduled on the asset and on the alias, and once resolved the alias runs on the asset's own
events too; `triggering_asset_events[alias]` and `inlet_events[alias]` hold the alias's events."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.support import Daemon, read_jsonl, wait_until, write_config

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "asset_edges" / "aliases.py"
URI = "s3://bucket/my-task"


def sql(db: Path, query: str) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
            return conn.execute(query).fetchall()
    except sqlite3.OperationalError:
        return []


def test_an_alias_runs_its_consumers_and_resolves_to_its_asset(tmp_path: Path) -> None:
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "aliases.py").write_text(FIXTURE.read_text())
    out, db = tmp_path / "out.jsonl", tmp_path / "state" / "dag_runs.db"
    start = int(time.time()) - 1
    env = {"RTSTREAM_ALIAS_OUT": str(out), "RTSTREAM_ALIAS_START": str(start),
           "RTSTREAM_ALIAS_PLAIN_AT": str(start + 6)}
    config = write_config(tmp_path / "dags.toml", {"dags": {"path": "dags"},
                                                   "daemon": {"state_dir": "state", "shutdown_grace": "5s"}})

    def consumed(dag: str) -> int:
        got = sql(db, f"SELECT COUNT(*) FROM asset_consumed c JOIN dag_run r ON r.dag_id = c.dag_id AND "
                      f"r.run_id = c.run_id WHERE c.dag_id = '{dag}' AND r.state = 'success'")
        return got[0][0] if got else 0

    with Daemon(config, tmp_path, env=env) as d:
        wait_until(lambda: consumed("on_asset") == 4 and consumed("on_alias") == 4, 60,
                   what="the four events of the asset consumed by both consumers")
        time.sleep(1)  # nothing more is due: a further run would show here
        d.signal(signal.SIGTERM)
        assert d.wait(20) == 0, d.stderr
    events = sql(db, f"SELECT seq, source_dag_id, extra, source_aliases FROM asset_event WHERE uri = '{URI}' "
                     "ORDER BY seq")
    lds = [datetime.fromtimestamp(start + k, tz=UTC).isoformat() for k in range(3)]
    through_alias = [(json.loads(e[2]), json.loads(e[3])) for e in events if e[1] == "alias_producer"]
    assert sorted(x[0]["ld"] for x in through_alias) == lds and all(x[1] == ["example-alias"] for x in through_alias)
    assert [(json.loads(e[2]), e[3]) for e in events if e[1] == "plain_producer"] == [({"plain": True}, None)]
    assert sql(db, "SELECT alias, name, uri FROM asset_alias") == [("example-alias", URI, URI)]
    for dag in ("on_asset", "on_alias"):  # every event consumed once by each
        seqs = sorted(r[0] for r in sql(db, f"SELECT seq FROM asset_consumed WHERE dag_id = '{dag}'"))
        assert seqs == [e[0] for e in events], (dag, seqs)
    lines = read_jsonl(out)
    on_alias = [r for r in lines if r["dag"] == "on_alias"]
    seen = [e for r in on_alias for e in r["asset_events"]]
    assert sorted(map(json.dumps, seen)) == sorted(json.dumps(e) for e in [*({"ld": ld} for ld in lds),
                                                                            {"plain": True}])
    # triggering_asset_events[alias]: only the events that came through it, naming it
    via = [e for r in on_alias for e in r["alias_events"]]
    assert sorted(e[0]["ld"] for e in via) == lds and all(e[1] == ["example-alias"] for e in via)
    # inlet_events[alias]: the alias's events so far, oldest first
    assert all([e["ld"] for e in r["inlet"]] == sorted(e["ld"] for e in r["inlet"]) for r in on_alias)
    assert max(len(r["inlet"]) for r in on_alias) == 3
    on_asset = [r for r in lines if r["dag"] == "on_asset"]
    assert sum(len(r["asset_events"]) for r in on_asset) == 4
