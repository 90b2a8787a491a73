"""The `sql` source against PostgreSQL (issue #24 cases 1 and 2): a table written by concurrent
transactions whose rows share cursor values (each transaction stamps its rows with its `now()`) and
commit in another order than they took their ids, polled by the daemon while they write; faults:
SIGKILL of the daemon in the middle of a round of writes, PostgreSQL restarted between rounds.
Check: every committed row exactly once in the output (by its id, counted once), no dead letter.
The truth is the table itself, read after the writers are done."""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from rtstream.testing.peers.postgres import PostgresCluster
from tests.faults.harness import proc
from tests.faults.harness.kinds.common import EdgeRun, uniform
from tests.lookup_stores import LookupPostgres
from tests.sql_writers import concurrent_inserts

VARIANTS = ("ts_tiebreak", "id_settle", "ts_settle")


def generate(rnd: random.Random, seed: int, fast: bool) -> dict[str, Any]:
    variant = rnd.choice(VARIANTS)
    rounds = [{"transactions": rnd.randrange(2, 5), "rows_each": rnd.randrange(8, 40 if fast else 70),
               "pause": uniform(rnd, 0.1, 0.6)} for _ in range(rnd.randrange(3, 5) if fast else rnd.randrange(4, 8))]
    most = max(r["rows_each"] for r in rounds)
    # without a tiebreak, more rows sharing one value than the LIMIT cannot be paged (a documented refusal)
    limit = rnd.randrange(most + 1, most + 90) if variant == "ts_settle" else rnd.randrange(20, 150)
    # settle must outlast the longest writing transaction (its inserts, then the commits `pause` apart)
    longest = max(r["transactions"] * r["pause"] + r["transactions"] * r["rows_each"] * 0.004 for r in rounds)
    settle = math.ceil(longest + 2)
    faults = []
    for _ in range(rnd.randrange(1, 3) if fast else rnd.randrange(1, 4)):
        kind = rnd.choice(("kill", "kill", "pg_restart"))
        faults.append({"kind": kind, "round": rnd.randrange(len(rounds)), "delay": uniform(rnd, 0.1, 1.5),
                       "pause": uniform(rnd, 0.2, 3.0)})
    faults.sort(key=lambda f: (f["round"], f["delay"]))
    interval = rnd.choice(["100ms", "200ms", "300ms"])
    desc = (f"{variant}, LIMIT {limit}, settle {settle}s, poll {interval}, {len(rounds)} rounds of "
            f"{'/'.join(str(r['transactions']) + 'x' + str(r['rows_each']) for r in rounds)} rows, faults: "
            + (", ".join(f"{f['kind']}@round{f['round']}" for f in faults) or "none"))
    return {"variant": variant, "rounds": rounds, "limit": limit, "settle": settle, "interval": interval,
            "faults": faults, "describe": desc}


class Postgres(LookupPostgres):
    """An empty cluster that can be stopped and started on its address (LookupPostgres's down/up)."""

    def __init__(self) -> None:
        super().__init__({})

    def start(self) -> Postgres:
        PostgresCluster.start(self)
        return self


def query(p: dict[str, Any], table: str) -> dict[str, Any]:
    v, limit = p["variant"], p["limit"]
    cols = f"SELECT id, ts, v FROM {table}"
    if proc.PLAIN_SQL_CURSOR:  # a daemon from before tiebreak_field and settle: what its users wrote
        if v == "id_settle":
            return {"query": f"{cols} WHERE id > :cursor ORDER BY id LIMIT {limit}", "cursor_field": "id",
                    "cursor_start": 0}
        return {"query": f"{cols} WHERE ts > CAST(CAST(:cursor AS text) AS timestamptz) ORDER BY ts LIMIT {limit}",
                "cursor_field": "ts", "cursor_start": "1970-01-01T00:00:00Z"}
    settle = {"settle": f"{p['settle']}s"}
    if v == "id_settle":
        return {"query": f"{cols} WHERE id > :cursor ORDER BY id LIMIT {limit}", "cursor_field": "id",
                "cursor_start": 0, **settle}
    if v == "ts_tiebreak":
        return {"query": f"{cols} WHERE (ts, id) > (:cursor, :tiebreak) ORDER BY ts, id LIMIT {limit}",
                "cursor_field": "ts", "tiebreak_field": "id", "cursor_start": "1970-01-01T00:00:00Z", **settle}
    return {"query": f"{cols} WHERE ts > :cursor ORDER BY ts LIMIT {limit}", "cursor_field": "ts",
            "cursor_start": "1970-01-01T00:00:00Z", **settle}


def _pg(dsn: str, sql: str) -> Any:
    async def go() -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(sql)
        finally:
            await conn.close()
    return asyncio.run(go())


def output(root: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for f in sorted(root.glob("*.jsonl")) for line in f.read_bytes().splitlines()
            if line.strip()]


def play(seed: int, p: dict[str, Any], workdir: Path) -> EdgeRun:
    run = EdgeRun(p, workdir)
    pg = Postgres().start()
    table = f"orders_{seed}"
    try:
        _pg(pg.dsn, f"create table {table} (id bigint generated always as identity primary key, "
                    f"ts timestamptz not null, v int not null)")
        doc = {
            "pipeline": {"name": f"hsql-{seed}", "flow": "db >> per_id >> out"},
            # the source's persisted time (the spool's arrival): a row that commits late is not late
            "window": {"size": "5s", "lateness": "1s", "idle_timeout": "1s", "time": "source"},
            "sources": {"db": {"type": "sql", "dsn": pg.dsn, "interval": p["interval"], **query(p, table)}},
            "stages": {"per_id": {"type": "aggregate", "key": "id", "aggregates": {"n": "count()", "v": "sum(v)"}}},
            "sinks": {"out": {"type": "file", "path": str(workdir / "out" / "r0"), "fsync": False}},
            "defaults": {"retry_delay": "100ms", "max_retry_delay": "1s"},
            "dead_letter": {"path": str(workdir / "dead.jsonl")},
            "daemon": {"state_dir": str(workdir / "state" / "r0"), "commit_interval": "200ms", "shutdown_grace": "10s"},
        }
        cfg = run.write_config("r0", doc)
        run.start("r0", cfg)
        pending = list(p["faults"])
        for i, rnd_ in enumerate(p["rounds"]):
            errors: list[BaseException] = []

            def write(i: int = i, r: dict[str, Any] = rnd_, errors: list[BaseException] = errors) -> None:
                try:
                    asyncio.run(concurrent_inserts(pg.dsn, table, r["transactions"], r["rows_each"], seed * 100 + i,
                                                   pause=r["pause"]))
                except BaseException as exc:  # noqa: BLE001 - reported as a harness failure
                    errors.append(exc)

            writer = threading.Thread(target=write)
            writer.start()
            began = time.monotonic()
            for f in [f for f in pending if f["round"] == i and f["kind"] == "kill"]:
                time.sleep(max(0.0, began + f["delay"] - time.monotonic()))
                run.kill_and_restart("r0", f["pause"] / 3)  # wait for it: a PostgreSQL restart may follow  # while the round still writes
            writer.join()
            if errors:
                run.failures.append(f"harness: the writers of round {i} failed: {errors[0]!r}")
            for f in [f for f in pending if f["round"] == i and f["kind"] == "pg_restart"]:
                pg.down()
                time.sleep(f["pause"])
                pg.up()
                run.faults["pg_restart"] += 1
            run.reap_ended()
            time.sleep(random.Random(seed * 31 + i).uniform(0.0, 0.5))
        committed = sorted(r["id"] for r in _pg(pg.dsn, f"select id from {table}"))

        def got() -> set[int]:
            return {r["id"] for r in output(workdir / "out" / "r0")}

        run.wait_complete(lambda: set(committed) <= got(), lambda: len(got()), stall_s=max(30, p["settle"] + 20),
                          cap_s=240, what="the output")
        run.terminate("r0")
        check(run, committed, output(workdir / "out" / "r0"), workdir / "dead.jsonl")
    finally:
        run.close()
        pg.stop()
    return run


def check(run: EdgeRun, committed: list[int], rows: list[dict[str, Any]], dead: Path) -> None:
    """Every committed row once: present, in one output row, counted once; nothing else."""
    per_id: Counter[int] = Counter()
    counted: Counter[int] = Counter()
    for r in rows:
        per_id[r["id"]] += 1
        counted[r["id"]] += r["n"]
    truth = set(committed)
    missing = sorted(truth - set(per_id))
    extra = sorted(set(per_id) - truth)
    twice = sorted(i for i in truth & set(per_id) if per_id[i] > 1 or counted[i] != 1)
    run.figures.update(committed_rows=len(committed), output_rows=len(rows), missing=len(missing),
                       duplicated=len(twice))
    if missing:
        run.failures.append(f"sql: {len(missing)} of {len(truth)} committed rows never in the output, "
                            f"ids e.g. {missing[:8]}")
    if extra:
        run.failures.append(f"sql: {len(extra)} ids in the output that the table does not hold, e.g. {extra[:5]}")
    if twice:
        run.failures.append(f"sql: {len(twice)} rows written or counted more than once, e.g. "
                            + "; ".join(f"id {i}: {per_id[i]} rows, n {counted[i]}" for i in twice[:4]))
    lines = dead.read_bytes().splitlines() if dead.exists() else []
    run.figures["dead_letters"] = len(lines)
    if lines:
        run.failures.append(f"sql: {len(lines)} dead letters, e.g. {lines[0][:300]!r}")
