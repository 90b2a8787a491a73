"""The `lookup` stage against a reference store that goes down for a few seconds (issue #24 case 3):
PostgreSQL or an HTTP API, stopped and started again on its address at seeded moments while records
flow from a followed file; sometimes a SIGKILL of the daemon too. A few records ask for keys the
store does not hold (`on_missing` keep or dead_letter). Check: every record exactly once in the
output with the store's answer, the missing keys as `on_missing` says, and no dead letter caused by
the outage (a store's failure halts and retries, it is not the record's fault)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from tests.faults.harness.checker import read_dead_letters
from tests.faults.harness.kinds.common import EdgeRun, uniform
from tests.faults.harness.scenario import BASE_MS
from tests.lookup_stores import LookupApi, LookupPostgres

CLOSER_ID = -1


def generate(rnd: random.Random, seed: int, fast: bool) -> dict[str, Any]:
    n = rnd.randrange(600, 1500) if fast else rnd.randrange(1000, 3000)
    keys = rnd.randrange(n // 4, n)
    absent = sorted(rnd.sample(range(keys), max(1, keys // rnd.randrange(30, 100))))  # not in the store
    chunks = rnd.randrange(5, 9)
    faults = [{"kind": "store_down", "chunk": rnd.randrange(1, chunks), "duration": uniform(rnd, 1.0, 4.0 if fast else 8.0)}
              for _ in range(rnd.randrange(1, 3) if fast else rnd.randrange(1, 4))]
    if rnd.random() < 0.35:
        faults.append({"kind": "kill", "chunk": rnd.randrange(1, chunks), "duration": uniform(rnd, 0.2, 1.5)})
    faults.sort(key=lambda f: f["chunk"])
    p = {"store": rnd.choice(["postgres", "http"]), "records": n, "keys": keys, "absent": absent,
         "order": [rnd.randrange(keys) for _ in range(n)], "chunks": chunks, "faults": faults,
         "on_missing": rnd.choice(["keep", "dead_letter"]), "cache_ttl": rnd.choice(["1s", "3s", "10m"]),
         "batch": rnd.choice([20, 50, 200]), "retries": rnd.randrange(0, 3)}
    p["describe"] = (f"{p['store']} store, {n} records over {keys} keys ({len(absent)} absent, on_missing "
                     f"{p['on_missing']}), cache_ttl {p['cache_ttl']}, batch {p['batch']}, retries {p['retries']}, "
                     f"{chunks} parts, faults: " + ", ".join(f"{f['kind']}@part{f['chunk']}/{f['duration']}s"
                                                             for f in faults))
    return p


def key(k: int) -> str:
    return f"s{k:05d}"


def region(k: int) -> str:
    return f"r{k % 7}-{k % 13}"


def play(seed: int, p: dict[str, Any], workdir: Path) -> EdgeRun:
    run = EdgeRun(p, workdir)
    absent = set(p["absent"])
    ref = {key(k): {"region": region(k)} for k in range(p["keys"]) if k not in absent}
    store: Any = LookupPostgres(ref) if p["store"] == "postgres" else LookupApi(ref)
    src = workdir / "orders.jsonl"
    src.touch()
    records = [{"id": i, "store": key(k), "ts": BASE_MS + i * 400} for i, k in enumerate(p["order"])]
    timers: list[threading.Timer] = []
    with store:
        doc = {
            "pipeline": {"name": f"hlookup-{seed}", "flow": "orders >> enrich >> out"},
            "window": {"size": "1m", "lateness": "2s", "idle_timeout": "1h"},
            "sources": {"orders": {"type": "file", "path": str(src), "follow": True, "poll_interval": "50ms",
                                   "batch_size": p["batch"]}},
            "stages": {"enrich": {"type": "lookup", **store.lookup_config("store"), "cache_size": 100_000,
                                  "cache_ttl": p["cache_ttl"], "on_missing": p["on_missing"], "retries": p["retries"],
                                  "retry_delay": "100ms", "max_retry_delay": "500ms", "timeout": "2s"}},
            "sinks": {"out": {"type": "file", "path": str(workdir / "out" / "r0"), "fsync": False}},
            "dead_letter": {"path": str(workdir / "dead" / "r0.jsonl")},
            "daemon": {"state_dir": str(workdir / "state" / "r0"), "commit_interval": "200ms", "shutdown_grace": "10s"},
        }
        run.start("r0", run.write_config("r0", doc))
        run.wait_running("r0")  # a store down at the daemon's very start is another matter (exit 1, restarted)
        step = random.Random(seed * 7 + 3)
        n, chunks = len(records), p["chunks"]
        try:
            for c in range(chunks):
                with open(src, "ab") as fh:
                    fh.write(b"".join(orjson.dumps(r) + b"\n" for r in records[n * c // chunks:n * (c + 1) // chunks]))
                for f in [f for f in p["faults"] if f["chunk"] == c]:
                    for t in timers:
                        t.join()  # one outage at a time
                    if f["kind"] == "kill":
                        run.kill_and_restart("r0", f["duration"])
                    else:
                        store.down()
                        t = threading.Timer(f["duration"], store.up)
                        t.start()
                        timers.append(t)
                        run.faults["store_down"] += 1  # the next parts are written while it lasts
                run.reap_ended()
                time.sleep(step.uniform(0.1, 0.6))
            for t in timers:
                t.join()
            with open(src, "ab") as fh:  # far ahead in event time: closes every window before it
                fh.write(orjson.dumps({"id": CLOSER_ID, "store": key(0), "ts": BASE_MS + n * 400 + 600_000}) + b"\n")
            expect = {r["id"] for r in records if not (p["on_missing"] == "dead_letter" and r["store"] not in ref)}

            def got() -> list[dict[str, Any]]:
                return [r for r in output(workdir / "out" / "r0") if r["id"] != CLOSER_ID]

            run.wait_complete(lambda: expect <= {r["id"] for r in got()}, lambda: len(got()), stall_s=45, cap_s=300,
                              what="the output")
            run.terminate("r0")
            check(run, records, ref, got(), read_dead_letters(workdir / "dead"), p["on_missing"])
        finally:
            for t in timers:
                t.cancel()
            run.close()
    return run


def output(root: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for f in sorted(root.glob("*.jsonl")) for line in f.read_bytes().splitlines()
            if line.strip()]


def check(run: EdgeRun, records: list[dict[str, Any]], ref: dict[str, dict[str, str]], rows: list[dict[str, Any]],
          dead: list[dict[str, Any]], on_missing: str) -> None:
    seen: Counter[int] = Counter(r["id"] for r in rows)
    by_id = {r["id"]: r for r in rows}
    dead_ids: Counter[int] = Counter()
    for d in dead:
        value = d.get("value")
        try:
            value = orjson.loads(value) if isinstance(value, str) else value
        except orjson.JSONDecodeError:
            pass
        dead_ids[value.get("id") if isinstance(value, dict) else None] += 1
    missing, wrong, outage_dead, absent_kept = [], [], [], 0
    for r in records:
        known = r["store"] in ref
        if not known and on_missing == "dead_letter":
            if r["id"] not in dead_ids:
                missing.append(r["id"])
            continue
        if r["id"] not in seen:
            missing.append(r["id"])
            if dead_ids.get(r["id"]):
                outage_dead.append(r["id"])
            continue
        want = ref[r["store"]]["region"] if known else None
        if by_id[r["id"]].get("region") != want:
            wrong.append((r["id"], by_id[r["id"]].get("region"), want))
        absent_kept += not known
    good_dead = [d for d in dead if not _is_absent(d, ref) or on_missing != "dead_letter"]
    twice = sorted(i for i, c in seen.items() if c > 1)
    run.figures.update(records=len(records), output_rows=len(rows), dead_letters=len(dead),
                       good_dead_lettered=len(good_dead), absent_keys_kept=absent_kept)
    if good_dead:
        reasons = sorted({f"{d.get('reason')}: {str(d.get('detail'))[:120]}" for d in good_dead})[:3]
        run.failures.append(f"lookup: {len(good_dead)} records dead-lettered that the store could answer "
                            f"(the outage's fault, not theirs): {reasons}")
    if missing:
        run.failures.append(f"lookup: {len(missing)} of {len(records)} records never in the output"
                            + (f" ({len(outage_dead)} of them dead-lettered)" if outage_dead else "")
                            + f", ids e.g. {missing[:8]}")
    if twice:
        run.failures.append(f"lookup: {len(twice)} records written more than once, e.g. {twice[:5]}")
    if wrong:
        run.failures.append(f"lookup: {len(wrong)} records with another answer than the store's, e.g. {wrong[:3]}")


def _is_absent(d: dict[str, Any], ref: dict[str, dict[str, str]]) -> bool:
    """A dead letter of a record whose key the store does not hold (on_missing = dead_letter)."""
    value = d.get("value")
    try:
        value = orjson.loads(value) if isinstance(value, str) else value
    except orjson.JSONDecodeError:
        return False
    return isinstance(value, dict) and value.get("store") not in ref and d.get("reason") == "lookup"
