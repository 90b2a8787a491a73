"""Plays one scenario against the real daemon and checks what it left behind."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from rtstream.testing.peers.ports import free_port
from rtstream.testing.peers.tansu import create_topic
from tests.faults.harness.checker import Outputs, Verdict, check, read_dead_letters, read_file_sinks
from tests.faults.harness.cluster import Broker, Receiver, Replica, S3Store, post_until_answered
from tests.faults.harness.scenario import CLOSER_KEY, REFUSED_BY_INGEST, Fault, Scenario, closer_time, generate
from tests.kafka_helpers import count_per_partition, first_fetch_seconds, produce_to_partitions
from tests.support import wait_until, write_config

MAX_REPLICAS = 3
FAST_CONSUMER = {"session_timeout_ms": 3000, "heartbeat_interval_ms": 300, "fetch_max_wait_ms": 10,
                 "max_partition_fetch_bytes": 8 << 20}
SLOW_FETCH_S = 5.0  # tansu_s3_slow: a broker this slow to answer one fetch cannot judge a stall (idle: under 0.5 s)


def replay_command(s: Scenario) -> str:
    known = s.extra.get("known")
    only = s.extra.get("only")
    return (f"python -m tests.faults.harness --seed {s.seed}" + (" --fast" if s.fast else "")
            + (f" --known-bugs {','.join(known)}" if known else "") + (f" --kinds {','.join(only)}" if only else ""))


@dataclass
class Result:
    scenario: Scenario
    verdict: Verdict
    seconds: float
    faults: Counter[str] = field(default_factory=Counter)  # applied, by kind
    skipped: list[str] = field(default_factory=list)
    workdir: Path | None = None

    @property
    def ok(self) -> bool:
        return self.verdict.ok

    def report(self) -> str:
        s = self.scenario
        head = f"{'PASS' if self.ok else 'FAIL'} {s.describe()} [{self.seconds:.1f}s]"
        lines = [head, f"  faults applied: {dict(self.faults) or 'none'}"
                 + (f"; skipped: {self.skipped}" if self.skipped else ""),
                 f"  figures: {self.verdict.figures}"]
        if not self.ok:
            lines += [f"  FAILED: {f}" for f in self.verdict.failures]
            if self.workdir is not None:
                lines.append(f"  logs and outputs: {self.workdir}")
            lines.append(f"  replay: {replay_command(s)}")
        return "\n".join(lines)


class Run:
    def __init__(self, s: Scenario, workdir: Path):
        self.s = s
        self.dir = workdir
        self.rnd = random.Random(s.seed * 7919 + 1)  # the runner's own choices, still fixed by the seed
        self.failures: list[str] = []
        self.faults: Counter[str] = Counter()
        self.skipped: list[str] = []
        self.replicas: list[Replica] = []
        self.receiver = Receiver(dedupe="http_key" not in s.extra["known"]) if s.http_sink else None
        self.broker_restarted_at = -1e9
        self.restarting = False
        self.input_lost = False
        self.figures: dict[str, int] = {}
        self.acked: Counter[int] = Counter()  # messages the broker acknowledged, by partition
        self.timers: list[threading.Timer] = []
        self.broker: Broker | None = None
        self.refused: set[str] = set()
        self.topic = f"in-{s.seed}"
        self.not_judged = ""  # why the run's outputs are not checked (tansu_s3_slow)
        self.ingest_port = free_port()
        for sub in ("out", "dead", "state", "logs"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)

    # -- configuration -------------------------------------------------------------------------
    def source(self) -> dict[str, Any]:
        s = self.s
        if s.kind == "kafka":
            assert self.broker is not None
            return {"type": "kafka", "bootstrap_servers": self.broker.bootstrap, "topics": [self.topic],
                    "group_id": f"grp-{s.seed}", "stop_at_end": s.finite,
                    # a finite run starts a fresh group from the beginning; a live one resumes from commits
                    "start": "earliest" if s.finite else "committed",
                    "max_batch": s.max_batch, "consumer": FAST_CONSUMER}
        if s.kind == "file":
            return {"type": "file", "path": str(self.dir / "input.jsonl"), "follow": True, "poll_interval": "50ms",
                    "batch_size": s.max_batch}
        return {"type": "http_ingest", "listen": f"127.0.0.1:{self.ingest_port}", "path": "/ingest",
                "batch_size": s.max_batch}

    def config(self, index: int) -> Path:
        s = self.s
        sinks: dict[str, Any] = {"files": {"type": "file", "path": str(self.dir / "out" / f"r{index}"), "fsync": False}}
        if self.receiver is not None:
            sinks["hook"] = {"type": "http", "url": self.receiver.url, "max_retries": 0, "request_timeout": "2s"}
        doc = {
            "pipeline": {"name": f"harness-{s.seed}", "flow": f"events >> agg >> [{', '.join(sinks)}]"},
            "window": {"size": f"{s.window_s}s", "lateness": f"{s.lateness_s}s", "idle_timeout": "1h",
                       "time": "event", "time_field": "ts"},
            "sources": {"events": self.source()},
            "stages": {"agg": {"type": "aggregate", "key": "user_id",
                               "aggregates": {"n": "count()", "total": "sum(amount)"}}},
            "sinks": sinks,
            "defaults": {"retry_delay": "100ms", "max_retry_delay": "1s"},
            "dead_letter": {"path": str(self.dir / "dead" / f"r{index}.jsonl")},
            "daemon": {"state_dir": str(self.dir / "state" / f"r{index}"), "commit_interval": "200ms",
                       "shutdown_grace": "10s"},
        }
        return write_config(self.dir / f"r{index}.toml", doc)

    # -- input -----------------------------------------------------------------------------------
    def item(self, entry: tuple[str, int]) -> tuple[bytes | None, bytes, int | None]:
        what, i = entry
        if what == "good":
            e = self.s.good[i]
            return e["user_id"].encode(), orjson.dumps(e), None
        return None, self.s.poison[i].raw, self.s.extra["poison_partitions"][i]

    def write(self, entries: list[tuple[str, int]]) -> None:
        s = self.s
        if s.kind == "kafka":
            assert self.broker is not None
            acked = asyncio.run(produce_to_partitions(self.broker.bootstrap, self.topic, [self.item(e) for e in entries]))
            self.acked.update(p for p, _ in acked)
        elif s.kind == "file":
            with open(self.dir / "input.jsonl", "ab") as fh:
                fh.write(b"".join(self.item(e)[1] + b"\n" for e in entries))
        else:
            url = f"http://127.0.0.1:{self.ingest_port}/ingest"
            body: list[bytes] = []
            for e in entries:
                if e[0] == "poison" and s.poison[e[1]].kind in REFUSED_BY_INGEST:
                    status = post_until_answered(url, s.poison[e[1]].raw, self.alive)
                    if status == 400:
                        self.refused.add(s.poison[e[1]].marker)
                    elif status != 202:
                        self.input_lost = True
                        self.failures.append(f"ingest answered {status} to poison {s.poison[e[1]].marker}")
                else:
                    body.append(self.item(e)[1])
            if body:
                status = post_until_answered(url, b"\n".join(body) + b"\n", self.alive)
                if status != 202:
                    self.input_lost = True  # the outputs cannot complete: no need to wait for them
                    self.failures.append(f"ingest answered {status} to a body of {len(body)} records")

    def write_closers(self) -> None:
        t = closer_time(self.s)
        closer = {"user_id": CLOSER_KEY, "ts": t, "amount": 0}
        if self.s.kind == "kafka":
            assert self.broker is not None
            items = [(CLOSER_KEY.encode(), orjson.dumps(closer), p) for p in range(self.s.partitions)]
            self.acked.update(p for p, _ in asyncio.run(produce_to_partitions(self.broker.bootstrap, self.topic, items)))
        elif self.s.kind == "file":
            with open(self.dir / "input.jsonl", "ab") as fh:
                fh.write(orjson.dumps(closer) + b"\n")
        else:
            post_until_answered(f"http://127.0.0.1:{self.ingest_port}/ingest", orjson.dumps(closer), self.alive)

    # -- replicas and faults ---------------------------------------------------------------------
    def add_replica(self) -> Replica:
        index = len(self.replicas)
        (self.dir / "logs" / f"r{index}").mkdir(parents=True, exist_ok=True)
        r = Replica(index, self.config(index), self.dir / "logs" / f"r{index}")
        self.replicas.append(r)
        r.start()
        return r

    def alive(self) -> bool:
        """Whether a replica runs or is being restarted by a fault."""
        return bool(self.running()) or self.restarting

    def running(self) -> list[Replica]:
        return [r for r in self.replicas if r.running]

    def after(self, seconds: float, fn: Any) -> None:
        t = threading.Timer(seconds, fn)
        t.daemon = True
        t.start()
        self.timers.append(t)

    def revive(self) -> None:
        """Reap replicas that ended on their own: finished (a finite run), or failed to start near a
        broker restart (restarted, as their supervisor would), or failed (a failure)."""
        for r in self.replicas:
            if r.daemon is not None and not r.running:
                code = r.reap(1)
                if code == 0 and self.s.finite:
                    continue
                if not self.restart_after_broker(r):
                    self.failures.append(f"replica r{r.index} exited on its own with {code}: {r.stderr_tail(800)}")

    def apply(self, f: Fault) -> None:
        self.revive()
        live = self.running()
        kind = f.kind
        if kind == "join" and len(live) >= MAX_REPLICAS:
            kind = "kill"
        if kind == "leave" and len(live) < 2:
            kind = "kill"
        if kind in ("kill", "leave") and not live:
            self.skipped.append(f"{f.kind}: no replica running any more")
            return
        if kind == "kill":
            victim = live[f.replica % len(live)]
            victim.kill()
            time.sleep(min(f.duration_s / 2, 2.0))
            victim.start()
        elif kind == "join":
            self.add_replica()
        elif kind == "leave":
            victim = live[f.replica % len(live)]
            # a process that has not yet set its signal handlers dies of SIGTERM like any other:
            # leaving is tested from a replica that is up
            wait_until(lambda: victim.has_logged(" running: ") or not victim.running, 30,
                       what=f"replica r{victim.index} up")
            code = victim.terminate(30)
            if code != 0:
                self.failures.append(f"replica r{victim.index} left on SIGTERM with exit {code}: "
                                     f"{victim.stderr_tail(600)}")
        elif kind == "broker_restart":
            assert self.broker is not None
            if self.broker.storage.startswith("memory"):
                self.skipped.append("broker_restart: moto_server not found, the broker would come back empty")
                return
            self.broker.stop()
            time.sleep(min(f.duration_s, 3.0))
            self.broker.start()
            self.broker_restarted_at = time.monotonic()
        elif kind == "sink_outage":
            assert self.receiver is not None
            self.receiver.down()
            self.after(f.duration_s, self.receiver.up)
        elif kind == "slow_sink":
            assert self.receiver is not None
            self.receiver.delay_s = round(0.1 + f.duration_s / 10, 2)
            self.after(f.duration_s, lambda: setattr(self.receiver, "delay_s", 0.0))
        self.faults[kind] += 1

    # -- the run ---------------------------------------------------------------------------------
    def outputs(self) -> Outputs:
        out = Outputs(file_rows=read_file_sinks(self.dir / "out"), dead=read_dead_letters(self.dir / "dead"),
                      refused=set(self.refused))
        if self.receiver is not None:
            with self.receiver.lock:
                out.http = dict(self.receiver.rows)
                out.http_conflicts = list(self.receiver.conflicts)
        return out

    def progress(self) -> int:
        """A number that grows while the replicas write anything."""
        files = [*(self.dir / "out").glob("*/*.jsonl"), *(self.dir / "dead").glob("*.jsonl")]
        n = sum(int(f.stat().st_mtime_ns) for f in files if f.exists())
        return n + (len(self.receiver.rows) if self.receiver is not None else 0)

    def complete(self) -> bool:
        return check(self.s, self.outputs()).ok

    def quiet(self) -> None:
        for t in self.timers:
            t.cancel()
        if self.receiver is not None:
            self.receiver.delay_s = 0.0
            self.receiver.up()

    def play(self) -> None:
        s = self.s
        if s.kind == "kafka":
            persistent = any(f.kind == "broker_restart" for f in s.faults) and S3Store.available()
            self.broker = Broker(self.dir, persistent, f"harness-{s.seed}-{time.time_ns()}").start()
            asyncio.run(create_topic(self.broker.bootstrap, self.topic, s.partitions))
        if self.receiver is not None:
            self.receiver.up()
        if s.finite:
            self.play_finite()
        else:
            self.play_live()

    def play_finite(self) -> None:
        s = self.s
        self.write(s.order)
        began = time.monotonic()
        for _ in range(s.replicas):
            self.add_replica()
            time.sleep(self.rnd.uniform(0.0, 1.0))  # staggered: the group rebalances while the first fetch
        for f in s.faults:
            time.sleep(max(0.0, began + f.after_s - time.monotonic()))
            self.apply(f)
        self.quiet()
        self.reap_finite()
        if self.faults["leave"]:
            # a replica that left may have left its partitions to replicas already finished: one
            # more finite run reads what is left from the group's commits, as an operator would
            self.add_replica()
            self.reap_finite()

    def reap_finite(self) -> None:
        deadline = time.monotonic() + (90 if self.s.fast else 180)
        for r in self.replicas:
            while r.daemon is not None:
                code = r.reap(max(1.0, deadline - time.monotonic()))
                if code == 0:
                    break
                if self.restart_after_broker(r):
                    continue
                self.failures.append(f"replica r{r.index} of a finite run ended with exit {code}"
                                     + (" (killed: it did not finish in time)" if code == -9 else "")
                                     + f": {r.stderr_tail(800)}")

    def restart_after_broker(self, r: Replica) -> bool:
        """A replica that could not reach the broker at its start exits 1 (by design: its supervisor
        restarts it). Only then, and only near a broker restart, does the harness restart it."""
        if "failed to start" in r.stderr_tail(3000) and time.monotonic() - self.broker_restarted_at < 20:
            self.faults["restart_after_failed_start"] += 1
            r.start()
            return True
        return False

    def play_live(self) -> None:
        s = self.s
        for _ in range(s.replicas):
            self.add_replica()
        total = len(s.order)
        cuts = sorted({total * k // s.chunks for k in range(1, s.chunks)} | {f.after for f in s.faults} | {total})
        written = 0
        pending = list(s.faults)
        for cut in cuts:
            self.write(s.order[written:cut])
            written = cut
            while pending and pending[0].after <= written:
                self.apply(pending.pop(0))
            self.revive()
            time.sleep(self.rnd.uniform(0.0, 0.4))
        self.write_closers()
        self.quiet()
        # slow is not stuck (an S3-backed broker on a busy machine fetches slowly): wait while the
        # outputs grow, up to a cap
        began = last_change = time.monotonic()
        seen = -1
        while not self.input_lost and not self.complete():
            now = time.monotonic()
            size = self.progress()
            if size != seen:
                seen, last_change = size, now
            if now - last_change > (30 if s.fast else 60) or now - began > (240 if s.fast else 480):
                if self.broker_too_slow(now - last_change):
                    break
                self.failures.append(f"outputs never became complete, {now - last_change:.0f}s without a new output "
                                     "(see the other failures for what was missing); "
                                     + " | ".join(f"r{r.index}: {r.stderr_tail(400)}" for r in self.running()))
                break
            self.revive()
            if not self.running():
                break  # nothing left to complete the outputs: the failures above say why
            if self.receiver is not None and self.receiver.conflicts:
                break  # a receiver that drops repeats has lost rows for good
            time.sleep(0.5)
        for r in self.running():
            code = r.terminate(30)
            if code != 0:
                self.failures.append(f"replica r{r.index} ended on SIGTERM with exit {code}: {r.stderr_tail(800)}")

    def broker_too_slow(self, stalled_s: float) -> bool:
        """tansu_s3_slow: after a broker restart, a stall while the broker takes SLOW_FETCH_S or more to
        answer a fresh consumer's fetch is the broker's, and the run is not judged (said in `skipped`)."""
        if "tansu_s3_slow" not in self.s.extra["known"] or not self.faults["broker_restart"] or self.broker is None:
            return False
        cap = 60.0
        took = asyncio.run(first_fetch_seconds(self.broker.bootstrap, self.topic, cap_s=cap))
        if took < SLOW_FETCH_S:
            self.failures.append(f"(tansu_s3_slow: the broker answered a fresh consumer's fetch in {took:.1f}s)")
            return False
        answer = f"took {took:.0f}s to answer" if took < cap else f"had not answered in {cap:.0f}s"
        self.not_judged = (f"tansu_s3_slow: no new output for {stalled_s:.0f}s after a broker restart, and the broker "
                           f"{answer} one fetch of a fresh consumer: not judged")
        self.skipped.append(self.not_judged)
        return True

    def check_logs(self) -> None:
        """Log lines that say something went wrong although the outputs may still be right."""
        commit_failures = 0
        for log in sorted((self.dir / "logs").glob("r*/daemon-*.err")):
            for line in log.read_text(errors="replace").splitlines():
                if "commit of " in line and " failed" in line:
                    commit_failures += 1
                    example = line
        self.figures["commit_failures_logged"] = commit_failures
        # without a broker nothing excuses a failed commit; with one, a rebalance or a restart may
        if commit_failures and self.s.kind != "kafka" and "mark_json" not in self.s.extra["known"]:
            self.failures.append(f"{commit_failures} failed commits logged, e.g. {example[:300]}")

    def audit_broker(self) -> None:
        """After a failure: does the broker still hold every message it acknowledged? A test broker
        that lost some explains missing results without rtstream losing anything."""
        if self.broker is None or self.broker.proc is None:
            return
        held = asyncio.run(count_per_partition(self.broker.bootstrap, self.topic, self.s.partitions))
        short = {p: self.acked[p] - n for p, n in held.items() if n < self.acked[p]}
        if short:
            self.failures.append(f"the BROKER lost acknowledged messages (partition: how many): {short}; "
                                 f"storage {self.broker.storage}")

    def close(self) -> None:
        self.quiet()
        for r in self.replicas:
            if r.daemon is not None:
                r.kill()
        if self.receiver is not None:
            self.receiver.down()
        if self.broker is not None:
            self.broker.stop()


def run_seed(seed: int, workdir: Path, fast: bool = False, known: frozenset[str] = frozenset(),
             only: frozenset[str] = frozenset()) -> Result:
    s = generate(seed, fast, known, only)
    began = time.monotonic()
    if "edge" in s.extra:
        return run_edge(s, workdir, began)
    run = Run(s, workdir)
    try:
        run.play()
        verdict = check(s, run.outputs())
        run.check_logs()
        verdict.figures.update(run.figures)
        if not verdict.ok and s.kind == "kafka" and not run.not_judged:  # a broker that slow cannot be counted
            run.audit_broker()
    except Exception as exc:  # noqa: BLE001 - a harness error is reported with its seed like any failure
        verdict = Verdict([f"harness error: {type(exc).__name__}: {exc}"], {})
    finally:
        run.close()
    if run.not_judged:  # a known broker fault (tansu_s3_slow): nothing can be told about rtstream
        verdict = Verdict([], verdict.figures)
    verdict.failures[:0] = run.failures
    return Result(s, verdict, time.monotonic() - began, run.faults, run.skipped, workdir)


def run_edge(s: Scenario, workdir: Path, began: float) -> Result:
    """A scenario of tests/faults/harness/kinds: it plays and checks itself."""
    from tests.faults.harness import kinds

    workdir.mkdir(parents=True, exist_ok=True)
    try:
        run = kinds.play(s.kind, s.seed, s.extra["edge"], workdir)
    except Exception as exc:  # noqa: BLE001 - a harness error is reported with its seed like any failure
        return Result(s, Verdict([f"harness error: {type(exc).__name__}: {exc}"], {}), time.monotonic() - began,
                      workdir=workdir)
    return Result(s, Verdict(run.failures, run.figures), time.monotonic() - began, run.faults, run.skipped, workdir)
