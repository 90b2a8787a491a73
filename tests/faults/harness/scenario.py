"""A scenario is a pure function of its seed: the input (good records in an order shuffled within
lateness, poison records of known kinds at known places), the topology and the fault plan."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import orjson

BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: event time in the past, so no window waits on the clock
SPAN_MS = 30 * 60_000
CLOSER_KEY = "closer"  # one record per partition far ahead in event time: it closes every window before it

KINDS = ("kafka", "kafka", "kafka", "file", "ingest")  # Kafka is where the topology varies: weigh it up
KAFKA_FAULTS = ("kill", "kill", "join", "leave", "broker_restart", "sink_outage", "slow_sink")
SINGLE_FAULTS = ("kill", "kill", "sink_outage", "slow_sink")

# kind -> the dead-letter reasons it may get; "refused" means HTTP ingest answers 400 for the whole body
POISON_REASONS: dict[str, set[str]] = {
    "invalid_json": {"decode"},
    "not_object": {"decode"},
    "odd_bytes": {"decode"},
    "missing_time": {"no_time"},
    "bad_time": {"no_time"},
    "deep_nested": {"no_time", "decode"},
    "missing_key": {"invalid"},
    "huge_field": {"invalid"},
}
# what HTTP ingest refuses at the door (400, nothing stored): malformed bodies, and records nested
# deeper than its limit (200 levels, see docs/SECURITY.md); each is posted on its own
REFUSED_BY_INGEST = {"invalid_json", "not_object", "odd_bytes", "deep_nested"}


@dataclass(frozen=True)
class Poison:
    marker: str  # P<seed>-<n>: found in the dead letter's value, whatever the product keeps of it
    kind: str
    raw: bytes


@dataclass(frozen=True)
class Fault:
    """One fault, applied once `after` input records have been written (live runs) or `after_s`
    seconds after the start (finite runs, whose input is all written first)."""

    kind: str
    after: int
    after_s: float
    replica: int = 0
    duration_s: float = 0.0  # outage or slowness length; the pause before a killed replica restarts


@dataclass
class Scenario:
    seed: int
    fast: bool
    kind: str  # kafka | file | ingest
    finite: bool  # kafka only: everything produced first, stop_at_end = true
    window_s: int
    lateness_s: int
    users: int
    partitions: int
    replicas: int  # at the start
    max_batch: int
    http_sink: bool
    good: list[dict[str, Any]]
    poison: list[Poison]
    order: list[tuple[str, int]]  # the input in order: ("good", i) or ("poison", i)
    faults: list[Fault]
    chunks: int  # live runs write the input in this many parts
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        if "edge" in self.extra:  # a kind of tests/faults/harness/kinds
            return f"seed {self.seed}: {self.kind}: {self.extra['edge']['describe']}"
        top = f"{self.replicas} replica(s), {self.partitions} partitions" if self.kind == "kafka" else "1 replica"
        mode = "finite" if self.finite else "live"
        faults = ", ".join(f"{f.kind}@{f.after_s if self.finite else f.after}" for f in self.faults) or "none"
        return (f"seed {self.seed}: {self.kind} ({mode}), {top}, {len(self.good)} records + {len(self.poison)} poison, "
                f"window {self.window_s}s lateness {self.lateness_s}s, max_batch {self.max_batch}, "
                f"http sink {'yes' if self.http_sink else 'no'}, faults: {faults}")


def poison_record(kind: str, marker: str, ts: int, rnd: random.Random, fast: bool) -> bytes:
    if kind == "invalid_json":
        return b'{"pid": "%s", "user_id": "poison", "ts": ' % marker.encode()
    if kind == "not_object":
        return orjson.dumps([marker, 1, 2])
    if kind == "odd_bytes":
        return b"\xff\xfe %s \x80\x81{" % marker.encode()
    if kind == "missing_time":
        return orjson.dumps({"pid": marker, "user_id": "poison", "amount": 1})
    if kind == "bad_time":
        return orjson.dumps({"pid": marker, "user_id": "poison", "ts": rnd.choice(["yesterday", None, True, ""]),
                             "amount": 1})
    if kind == "deep_nested":  # 300 levels: deeper than orjson writes (254), shallower than it reads
        head = b'{"pid": "%s", "user_id": "poison", "ts": "never", "n": ' % marker.encode()
        return head + b'{"n": ' * 299 + b"1" + b"}" * 300
    if kind == "missing_key":
        return orjson.dumps({"pid": marker, "ts": ts, "amount": 1})
    if kind == "huge_field":  # a string amount a few hundred KB to a few MB long: invalid for sum()
        size = rnd.randrange(200_000, 600_000) if fast else rnd.randrange(1_000_000, 3_000_000)
        return orjson.dumps({"pid": marker, "user_id": "poison", "ts": ts, "amount": "9" * size})
    raise ValueError(kind)


# Product bugs the harness can step around while they are being fixed, without changing anything
# else a seed decides (--known-bugs): what each one would otherwise fail.
KNOWN_BUGS = {
    "tansu_metadata": "not a product bug: Tansu drops offset-commit metadata (memory and s3 storage alike), "
                      "so the marks reach a replica taking a partition over only through the old owner's "
                      "state_dir, which it does not see: it rebuilds and writes the piece of an already written "
                      "window that lies after the commit. Count such pieces (another replica's folder, fewer "
                      "records, the whole result present too) instead of failing on them",
    "tansu_s3_slow": "not a product bug: Tansu on s3:// storage served by moto_server answers a fetch in tens of "
                     "seconds to minutes on a starved machine, longer than the harness's 3 s sessions last there, "
                     "so the group rebalances before any answer arrives and every replica goes back to the "
                     "group's commit (docs/RELIABILITY.md, seed 87). A stall after a broker restart while the "
                     "broker takes 5 s or more to answer a fresh consumer's fetch is reported as not judged",
}


def generate(seed: int, fast: bool = False, known: frozenset[str] = frozenset(),
             only: frozenset[str] = frozenset()) -> Scenario:
    """The scenario of `seed`; `known` names KNOWN_BUGS to step around; `only` restricts the seed to
    those kinds of tests/faults/harness/kinds."""
    from tests.faults.harness import kinds

    edge = kinds.pick(seed, only)
    if edge is not None:
        return Scenario(seed=seed, fast=fast, kind=edge, finite=False, window_s=0, lateness_s=0, users=0, partitions=0,
                        replicas=1, max_batch=0, http_sink=False, good=[], poison=[], order=[], faults=[], chunks=0,
                        extra={"edge": kinds.params(edge, seed, fast), "known": sorted(known),
                               "only": sorted(only)})
    skip_poison = {"deep_nested"} & known
    rnd = random.Random(seed)
    kind = rnd.choice(KINDS)
    finite = kind == "kafka" and rnd.random() < 0.35
    window_s = rnd.choice([60, 60, 300])
    lateness_s = rnd.choice([60, 90, 120])
    users = rnd.randrange(8, 60)
    n_good = rnd.randrange(1500, 3000) if fast else rnd.randrange(3000, 8000)
    partitions = rnd.randrange(4, 7) if kind == "kafka" else 1
    replicas = rnd.randrange(1, 4) if kind == "kafka" else 1
    max_batch = rnd.choice([100, 250, 500])

    times = sorted(BASE_MS + rnd.randrange(SPAN_MS) for _ in range(n_good))
    good = [{"user_id": f"u{rnd.randrange(users)}", "ts": t, "amount": rnd.randrange(1, 1000)} for t in times]
    # shuffled within lateness: sorted by time plus up to 0.8 x lateness, so no record trails any
    # record before it by lateness or more, in the whole input and so in any partition of it
    jitter = int(lateness_s * 1000 * 0.8)
    good_order = sorted(range(n_good), key=lambda i: good[i]["ts"] + rnd.randrange(jitter))

    per_kind = 1 if fast else rnd.randrange(1, 4)
    poison: list[Poison] = []
    for k in POISON_REASONS:
        for _ in range(per_kind if k != "huge_field" else 1):
            marker = f"P{seed}-{len(poison)}"
            poison.append(Poison(marker, k, b""))
    order: list[tuple[str, int]] = [("good", i) for i in good_order]
    for i in rnd.sample(range(len(poison)), len(poison)):
        at = rnd.randrange(len(order) + 1)
        # a valid time: that of the next good record, which trails nothing before it by lateness
        near = next((good[j]["ts"] for w, j in order[at:] if w == "good"), times[-1])
        order.insert(at, ("poison", i))
        p = poison[i]
        poison[i] = Poison(p.marker, p.kind, poison_record(p.kind, p.marker, near, rnd, fast))

    chunks = rnd.randrange(4, 9)
    total = len(order)
    n_faults = rnd.randrange(1, 3) if fast else rnd.randrange(2, 5)
    choices = KAFKA_FAULTS if kind == "kafka" else SINGLE_FAULTS
    if fast:  # broker restarts need the S3-backed broker: slow, and they stall on a busy machine (soak only)
        choices = tuple(c for c in choices if c != "broker_restart")
    faults = []
    for _ in range(n_faults):
        fk = rnd.choice(choices)
        faults.append(Fault(fk, after=rnd.randrange(total // 10, total), after_s=round(rnd.uniform(0.3, 4.0), 2),
                            replica=rnd.randrange(3), duration_s=round(rnd.uniform(0.5, 4.0 if fast else 8.0), 2)))
    faults.sort(key=lambda f: f.after_s if finite else f.after)
    http_sink = any(f.kind in ("sink_outage", "slow_sink") for f in faults) or rnd.random() < 0.3
    poison_partitions = [rnd.randrange(partitions) for _ in poison]
    if skip_poison:
        kept = [i for i, p in enumerate(poison) if p.kind not in skip_poison]
        renumber = {old: new for new, old in enumerate(kept)}
        order = [(w, i if w == "good" else renumber[i]) for w, i in order if w == "good" or i in renumber]
        poison = [poison[i] for i in kept]
        poison_partitions = [poison_partitions[i] for i in kept]
    return Scenario(seed=seed, fast=fast, kind=kind, finite=finite, window_s=window_s, lateness_s=lateness_s,
                    users=users, partitions=partitions, replicas=replicas, max_batch=max_batch, http_sink=http_sink,
                    good=good, poison=poison, order=order, faults=faults, chunks=chunks,
                    extra={"poison_partitions": poison_partitions, "known": sorted(known)})


def closer_time(s: Scenario) -> int:
    """Far enough past the data that every window of it is behind the watermark."""
    return BASE_MS + SPAN_MS + 3 * (s.window_s + s.lateness_s) * 1000
