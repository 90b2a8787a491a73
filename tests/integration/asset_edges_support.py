"""A pipeline of 4 Kafka partitions whose sqlite sink declares `asset = "rtstream://clicks/per_user"`,
and the DAG chain of tests/fixtures/asset_edges/chain.py (dag_a on that asset, dag_b on dag_a's
outlet), checked against windows computed here from the same events."""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import signal
import sqlite3
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from tests.data import make_events
from tests.integration.dag_sink_support import FAST_CONSUMER, PARTITIONS, committed
from tests.kafka_helpers import count_per_partition, new_topics, produce
from tests.reference import tumbling_truth
from tests.support import Daemon, read_jsonl, sigkill_at_random_moments, wait_until, write_config

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "asset_edges" / "chain.py"
URI = "rtstream://clicks/per_user"


def _z(iso: str) -> str:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%Y-%m-%dT%H:%M:%SZ")


class ChainSetup:
    def __init__(self, tmp: Path, bootstrap: str, seed: int = 11, events: int = 1500, span_s: int = 300,
                 fail_first: bool = False, slow_s: float = 0.0):
        self.tmp, self.bootstrap = tmp, bootstrap
        self.src, _, self.group = new_topics(bootstrap, PARTITIONS)
        self.events = make_events(events, span_s=span_s, seed=seed)
        asyncio.run(produce(bootstrap, self.src, self.events, timestamp_field="ts"))
        (tmp / "dags").mkdir(exist_ok=True)
        shutil.copy(FIXTURE, tmp / "dags" / FIXTURE.name)
        self.out = tmp / "out" / "chain.jsonl"
        self.out.parent.mkdir(exist_ok=True)
        self.db = tmp / "state" / "dag_runs.db"
        self.env = {"RTSTREAM_CHAIN_OUT": str(self.out), **({"FAIL_FIRST": "1"} if fail_first else {}),
                    "SLOW_S": str(slow_s)}
        self.config = write_config(tmp / "pipeline.toml", {
            "pipeline": {"name": "clicks", "flow": "events >> per_user >> table"},
            "window": {"size": "1m", "time": "source", "lateness": "10s", "idle_timeout": "2s"},
            "sources": {"events": {"type": "kafka", "bootstrap_servers": bootstrap, "topics": [self.src],
                                   "group_id": self.group, "consumer": FAST_CONSUMER}},
            "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"events": "count()"}}},
            "sinks": {"table": {"type": "sqlite", "path": str(tmp / "out.db"), "asset": URI}},
            "dags": {"path": "dags"},
            "dead_letter": {"path": str(tmp / "dead.jsonl")},
            "daemon": {"state_dir": "state", "commit_interval": "200ms", "shutdown_grace": "10s"},
        })

    def daemon(self) -> Daemon:
        return Daemon(self.config, self.tmp, env=self.env)

    def windows(self) -> dict[str, int]:
        """window start (Z) -> its rows (one per user), from the events alone."""
        return Counter(_z(start) for start, _ in tumbling_truth(self.events, 60, "user_id"))

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        if not self.db.exists():
            return []
        try:
            with contextlib.closing(sqlite3.connect(self.db, timeout=10)) as db:
                return db.execute(query, args).fetchall()
        except sqlite3.OperationalError:
            return []  # the daemon is creating its tables

    def committed(self) -> dict[int, int | None]:
        return asyncio.run(committed(self.bootstrap, self.group, self.src))

    def ends(self) -> dict[int, int]:
        return asyncio.run(count_per_partition(self.bootstrap, self.src, PARTITIONS, idle_s=0.5))

    def done(self) -> bool:
        """Every window announced, and every event consumed by a run that succeeded, down the chain."""
        events = self.sql("SELECT COUNT(*) FROM asset_event WHERE uri = ?", URI)
        if not events or events[0][0] < len(self.windows()):
            return False
        left = self.sql("SELECT COUNT(*) FROM asset_event e WHERE NOT EXISTS (SELECT 1 FROM asset_consumed c "
                        "JOIN dag_run r ON r.dag_id = c.dag_id AND r.run_id = c.run_id WHERE c.seq = e.seq "
                        "AND r.state = 'success')")
        return bool(left) and left[0][0] == 0 and self.sql("SELECT 1 FROM dag_run WHERE state != 'success'") == []

    def check_chain(self, whole: bool = True) -> dict[str, int]:
        """One event per window (extra: pipeline, sink, window bounds, rows), consumed by exactly one
        successful run of dag_a, whose success's event is consumed by exactly one successful run of
        dag_b that started after it; every offset committed."""
        windows = self.windows()
        events = self.sql("SELECT seq, name, source_dag_id, source_task_id, extra, timestamp FROM asset_event "
                          "WHERE uri = ? ORDER BY seq", URI)
        extras = [orjson.loads(e[4]) for e in events]
        assert Counter(x["window_start"] for x in extras) == Counter({w: 1 for w in windows}), extras
        for e, x in zip(events, extras, strict=True):
            assert (e[1], e[2], e[3]) == ("clicks_per_user", "clicks", "table"), e
            assert x["pipeline"] == "clicks" and x["sink"] == "table", x
            # a window replayed in pieces (a partition's share closed apart after a restart) is announced by
            # its first piece: the event counts that piece's rows; whole, it counts them all
            assert (x["rows"] == windows[x["window_start"]]) if whole else (1 <= x["rows"] <= windows[x["window_start"]]), x
        runs = {(r[0], r[1]): r for r in self.sql("SELECT dag_id, run_id, state, start_date FROM dag_run")}
        assert {r[2] for r in runs.values()} == {"success"}, runs
        consumed = self.sql("SELECT c.dag_id, c.run_id, c.seq FROM asset_consumed c")
        by_seq: dict[int, list[tuple[str, str]]] = {}
        for dag_id, run_id, seq in consumed:
            by_seq.setdefault(seq, []).append((dag_id, run_id))
        a_events = self.sql("SELECT seq, source_run_id, timestamp FROM asset_event WHERE source_dag_id = 'dag_a' "
                            "AND uri = 'a_done'")
        a_runs = {k for k in runs if k[0] == "dag_a"}
        assert sorted(r for _, r, _ in a_events) == sorted(r for _, r in a_runs), "one a_done per dag_a run"
        a_event_of = {run_id: (seq, ts) for seq, run_id, ts in a_events}
        for seq, *_rest, ts in events:
            takers = by_seq.get(seq, [])
            assert len(takers) == 1 and takers[0][0] == "dag_a", f"window event {seq}: consumed by {takers}"
            a_run = runs[takers[0]]
            assert a_run[3] >= ts, f"dag_a's {a_run[1]} started before the window's event"
            a_seq, a_ts = a_event_of[a_run[1]]
            b_takers = by_seq.get(a_seq, [])
            assert len(b_takers) == 1 and b_takers[0][0] == "dag_b", f"a_done {a_seq}: consumed by {b_takers}"
            assert runs[b_takers[0]][3] >= a_ts, f"dag_b's {b_takers[0][1]} started before dag_a's success"
        lines = read_jsonl(self.out)
        a_lines = Counter(r["run_id"] for r in lines if r["dag"] == "dag_a")
        assert a_lines == Counter({r: 1 for _, r in a_runs}), a_lines  # each run's task succeeded once
        # the context: dag_a saw its consumed window events (triggering_asset_events, extras and all), dag_b
        # saw dag_a's extras through its trigger and, as inlet_events, every a_done event kept so far
        seen_a = [e["extra"]["window_start"] for r in lines if r["dag"] == "dag_a" for e in r["events"]]
        assert sorted(seen_a) == sorted(windows), seen_a
        assert all(r["by_uri"] == [URI] for r in lines if r["dag"] == "dag_a")
        assert all(e["source_dag_id"] == "clicks" for r in lines if r["dag"] == "dag_a" for e in r["events"])
        b_lines = [r for r in lines if r["dag"] == "dag_b"]
        seen_b = [w for r in b_lines for e in r["events"] for w in e["extra"]["windows"]]
        assert sorted(seen_b) == sorted(windows) and all(e["source_dag_id"] == "dag_a" for r in b_lines
                                                         for e in r["events"]), seen_b
        for r in b_lines:  # inlet_events: every a_done event so far, each once, its own trigger's among them
            own = {w for e in r["events"] for w in e["extra"]["windows"]}
            assert len(r["inlet_windows"]) == len(set(r["inlet_windows"])) and own <= set(r["inlet_windows"]), r
        assert {w for r in b_lines for w in r["inlet_windows"]} == set(windows)
        assert self.committed() == self.ends()
        return {"windows": len(windows), "dag_a_runs": len(a_runs), "dag_b_runs": sum(k[0] == "dag_b" for k in runs)}


def kill_until_done(setup: ChainSetup, rnd: random.Random, max_kills: int) -> dict[str, int]:
    """Start the daemon and SIGKILL it at a random moment, again and again; then let it run until the
    chain has consumed every window and every offset is committed, and SIGTERM it (exit 0)."""
    sigkill_at_random_moments(setup.daemon, rnd, max_kills, 0.5, 4.0)
    finish(setup)
    return {"kills": max_kills}


def finish(setup: ChainSetup, timeout: float = 120) -> None:
    with setup.daemon() as d:
        wait_until(lambda: d.proc.poll() is not None or (setup.done() and setup.committed() == setup.ends()),
                   timeout, interval=0.3, what="every window through dag_a and dag_b, every offset committed")
        assert d.proc.poll() is None, d.stderr
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr
