"""exactly_once beside itself (issue #24 cases 7 and 9), Kafka (Tansu) to a Kafka sink with
`exactly_once = true`:

- `workers`: one `rtstream run` with `[daemon] workers = 2` (group or static assignment), a finite
  run. Two producers sharing one transactional id fence each other, transaction after transaction.
- `static_pair`: two static readers of one group started together (a re-run, a copy started by
  hand), live: at most one may go on reading; the other must stop within seconds with one line.

Check: every (window, key) exactly once in the output topic read `read_committed`, equal to a
reference computed from the input; the daemons' error lines bounded; a finite run done in time."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rtstream.testing.peers.tansu import create_topic
from tests.faults.harness.cluster import Broker
from tests.faults.harness.kinds.common import EdgeRun, tail, uniform
from tests.faults.harness.scenario import BASE_MS, SPAN_MS
from tests.kafka_helpers import produce, read_all

SHIM_DIR = Path(__file__).resolve().parents[3] / "shims"  # Tansu runs transactions for InitProducerId v3 only
ERRORS_ALLOWED = 3  # error lines over the whole run: the one line of a reader that must stop, and a little slack
FINITE_CAP_S = 90  # a finite workers run of these sizes takes well under 30 s when nothing fences


def generate(rnd: random.Random, seed: int, fast: bool) -> dict[str, Any]:
    variant = rnd.choice(["workers", "workers", "static_pair"])
    n = rnd.randrange(2000, 4000) if fast else rnd.randrange(4000, 8000)
    p = {"variant": variant, "records": n, "users": rnd.randrange(10, 60), "partitions": rnd.randrange(2, 5),
         "window_s": rnd.choice([60, 300]), "assignment": rnd.choice(["group", "static"]) if variant == "workers"
         else "static", "stagger_s": uniform(rnd, 0.0, 0.3), "chunks": rnd.randrange(3, 7), "data_seed": rnd.random()}
    p["describe"] = (f"{variant}, {n} records, {p['users']} keys, {p['partitions']} partitions, window "
                     f"{p['window_s']}s, {p['assignment']} assignment"
                     + (f", second reader {p['stagger_s']}s later, input in {p['chunks']} parts"
                        if variant == "static_pair" else ", workers = 2, finite"))
    return p


def events(p: dict[str, Any]) -> list[dict[str, Any]]:
    rnd = random.Random(p["data_seed"])
    times = sorted(BASE_MS + rnd.randrange(SPAN_MS) for _ in range(p["records"]))
    return [{"user_id": f"u{rnd.randrange(p['users'])}", "ts": t, "amount": rnd.randrange(1, 1000)} for t in times]


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reference(evs: list[dict[str, Any]], window_s: int) -> dict[tuple[str, str], tuple[int, int]]:
    size = window_s * 1000
    out: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for e in evs:
        acc = out[(iso(e["ts"] // size * size), e["user_id"])]
        acc[0] += 1
        acc[1] += e["amount"]
    return {k: (a, b) for k, (a, b) in out.items()}


def config(run: EdgeRun, name: str, seed: int, broker: Broker, p: dict[str, Any], finite: bool) -> Path:
    doc = {
        "pipeline": {"name": f"heos-{seed}", "flow": "events >> agg >> results"},
        "window": {"size": f"{p['window_s']}s", "lateness": "60s", "idle_timeout": "1h", "time": "event",
                   "time_field": "ts"},
        "sources": {"events": {"type": "kafka", "bootstrap_servers": broker.bootstrap, "topics": [f"in-{seed}"],
                               "group_id": f"grp-{seed}", "start": "earliest", "stop_at_end": finite,
                               "assignment": p["assignment"], "max_batch": 500,
                               "consumer": {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500,
                                            "fetch_max_wait_ms": 10}}},
        "stages": {"agg": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()", "total": "sum(amount)"}}},
        "sinks": {"results": {"type": "kafka", "bootstrap_servers": broker.bootstrap, "topic": f"out-{seed}",
                              "exactly_once": True, "transaction_timeout": "20s"}},
        "defaults": {"retry_delay": "200ms", "max_retry_delay": "2s"},
        "dead_letter": {"path": str(run.dir / "dead" / f"{name}.jsonl")},
        "daemon": {"state_dir": str(run.dir / "state" / name), "commit_interval": "200ms", "shutdown_grace": "10s"},
    }
    if p["variant"] == "workers":
        doc["daemon"]["workers"] = 2
    return run.write_config(name, doc)


def play(seed: int, p: dict[str, Any], workdir: Path) -> EdgeRun:
    run = EdgeRun(p, workdir)
    broker = Broker(workdir, False, f"heos-{seed}").start()
    env = {"PYTHONPATH": str(SHIM_DIR)}
    evs = events(p)
    truth = reference(evs, p["window_s"])
    try:
        asyncio.run(create_topic(broker.bootstrap, f"in-{seed}", p["partitions"]))
        asyncio.run(create_topic(broker.bootstrap, f"out-{seed}", 2))
        if p["variant"] == "workers":
            asyncio.run(produce(broker.bootstrap, f"in-{seed}", evs))
            began = time.monotonic()
            proc = run.start("sup", config(run, "sup", seed, broker, p, finite=True), env)
            try:
                code = proc.wait(FINITE_CAP_S)
            except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: too slow is the failure
                code = None
                run.failures.append(f"eos: the finite run with workers = 2 did not end in {FINITE_CAP_S}s: "
                                    f"{tail(proc.err_path, 600)}")
                run.terminate("sup", expect=None)
            else:
                run.procs["sup"] = None
            took = time.monotonic() - began
            run.figures["finite_run_ms"] = int(took * 1000)
            if code not in (0, None):
                run.failures.append(f"eos: the finite run exited {code}: {tail(proc.err_path, 600)}")
        else:
            play_static_pair(run, seed, broker, p, evs, env, truth)
        out = asyncio.run(read_all(broker.bootstrap, f"out-{seed}", idle_s=3, timeout_s=60,
                                   isolation_level="read_committed"))
        check(run, truth, out)
    finally:
        run.close()
        broker.stop()
    return run


def play_static_pair(run: EdgeRun, seed: int, broker: Broker, p: dict[str, Any], evs: list[dict[str, Any]],
                     env: dict[str, str], truth: dict[tuple[str, str], tuple[int, int]]) -> None:
    cfg = {n: config(run, n, seed, broker, p, finite=False) for n in ("a", "b")}
    run.start("a", cfg["a"], env)
    time.sleep(p["stagger_s"])
    run.start("b", cfg["b"], env)
    for name in ("a", "b"):  # both have listed their partitions: they run side by side from here
        run.wait_running(name)
    rnd = random.Random(seed * 13 + 5)
    k = p["chunks"]
    for c in range(k):
        asyncio.run(produce(broker.bootstrap, f"in-{seed}", evs[len(evs) * c // k:len(evs) * (c + 1) // k]))
        time.sleep(rnd.uniform(0.2, 1.0))
    closer = [{"user_id": "closer", "ts": BASE_MS + SPAN_MS + 3_600_000, "amount": 0}]
    for part in range(p["partitions"]):
        asyncio.run(produce(broker.bootstrap, f"in-{seed}", closer, partition=part))

    def got() -> int:
        msgs = asyncio.run(read_all(broker.bootstrap, f"out-{seed}", idle_s=1, timeout_s=10,
                                    isolation_level="read_committed"))
        return len({(m["window_start"], m["user_id"]) for _, m in msgs} & set(truth))

    run.wait_complete(lambda: got() >= len(truth), got, stall_s=40, cap_s=180, what="the output topic")
    alive = [n for n in ("a", "b") if run.running(n)]
    run.figures["static_readers_left_running"] = len(alive)
    if len(alive) > 1:
        run.failures.append("eos: two static readers of one group both kept reading to the end (at most one may)")
    for name in ("a", "b"):
        if run.procs.get(name) is not None and not run.running(name):
            code = run.procs[name].wait(1)  # type: ignore[union-attr]
            run.exits[name].append(code)
            run.procs[name] = None
    for name in alive:
        run.terminate(name)
    stopped = [c for n in ("a", "b") for c in run.exits[n] if c not in (0, None)]
    run.figures["static_readers_stopped"] = len(stopped)


def check(run: EdgeRun, truth: dict[tuple[str, str], tuple[int, int]], out: list[tuple[Any, dict[str, Any]]]) -> None:
    got: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for _, m in out:
        if m.get("user_id") != "closer":
            got[(m["window_start"], m["user_id"])].append((m["n"], m["total"]))
    missing = sorted(set(truth) - set(got))
    extra = sorted(set(got) - set(truth))
    wrong = sorted(k for k in set(truth) & set(got) if any(v != truth[k] for v in got[k]))
    twice = sorted(k for k, vs in got.items() if len(vs) > 1)
    errors = run.error_lines()
    tracebacks = sum("Traceback" in line for line in errors)
    run.figures.update(results=len(truth), output_messages=len(out), missing=len(missing), duplicated=len(twice),
                       error_lines=len(errors), tracebacks=tracebacks)
    if missing:
        run.failures.append(f"eos: {len(missing)} of {len(truth)} (window, key) results missing, e.g. {missing[:3]}")
    if extra:
        run.failures.append(f"eos: {len(extra)} results for (window, key)s with no input, e.g. {extra[:3]}")
    if wrong:
        run.failures.append(f"eos: {len(wrong)} wrong results, e.g. "
                            + "; ".join(f"{k}: got {got[k]} want {truth[k]}" for k in wrong[:3]))
    if twice:
        run.failures.append(f"eos: {len(twice)} (window, key) results more than once in the read_committed output, "
                            f"e.g. {twice[:3]}")
    if len(errors) > ERRORS_ALLOWED or tracebacks:
        run.failures.append(f"eos: {len(errors)} error lines ({tracebacks} tracebacks) in the daemons' logs, "
                            f"{ERRORS_ALLOWED} allowed, e.g. {[e[:200] for e in errors[:3]]}")
