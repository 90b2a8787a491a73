"""The s3 sink in Parquet with rows it finds odd (issue #24 cases 5 and 6), against moto: `{}` at the
top and nested, lists nested 40 to 60 deep, lists of other depths in one column, objects of other
shapes in one column, empty lists; now and then a row nested past what JSON text holds (it must be
dead-lettered, alone). Records flow from a followed file straight to the sink (no aggregate: each
row is a record); faults: SIGKILL and restart, so windows are written again.
Check, with pyarrow alone: every object opens, and every record is in one object with every value
as it was (a column the sink marks `rtstream.json` holds JSON text, read back as values)."""

from __future__ import annotations

import atexit
import io
import random
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from rtstream.testing.peers.moto import MotoServer
from tests.faults.harness.checker import read_dead_letters
from tests.faults.harness.kinds.common import EdgeRun, uniform
from tests.faults.harness.scenario import BASE_MS

CLOSER_ID = -1
_moto: list[MotoServer] = []


def moto() -> MotoServer:
    """One moto server for the harness process; each seed has a bucket of its own."""
    if not _moto:
        _moto.append(MotoServer().start())
        atexit.register(_moto[0].stop)
    return _moto[0]


def nested(depth: int, leaf: Any) -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def generate(rnd: random.Random, seed: int, fast: bool) -> dict[str, Any]:
    n = rnd.randrange(150, 400) if fast else rnd.randrange(300, 1200)
    odd = {k: round(rnd.uniform(0.02, 0.2), 3) for k in ("empty", "inner", "tree", "depths", "shapes", "lists")}
    chunks = rnd.randrange(3, 7)
    faults = [{"kind": "kill", "chunk": rnd.randrange(chunks), "pause": uniform(rnd, 0.2, 1.5)}
              for _ in range(rnd.randrange(0, 3))]
    p = {"records": n, "spacing_ms": rnd.choice([500, 2000, 5000]), "odd": odd, "chunks": chunks, "faults": faults,
         "too_deep": rnd.random() < 0.4, "compression": rnd.choice(["snappy", "zstd", "none"]),
         "rows_seed": rnd.random()}
    p["describe"] = (f"{n} rows, {p['spacing_ms']} ms apart, odd shares {odd}, {p['compression']}, "
                     f"{'a row too deep for JSON, ' if p['too_deep'] else ''}{chunks} parts, faults: "
                     + (", ".join(f"kill@part{f['chunk']}" for f in faults) or "none"))
    return p


def rows(p: dict[str, Any]) -> list[dict[str, Any]]:
    rnd = random.Random(p["rows_seed"])
    odd = p["odd"]
    out = []
    for i in range(p["records"]):
        r: dict[str, Any] = {"id": i, "ts": BASE_MS + i * p["spacing_ms"], "attrs": {"n": i, "tag": f"t{i % 5}"},
                             "deep": [[i]]}
        if rnd.random() < odd["empty"]:
            r["empty"] = {}
        if rnd.random() < odd["inner"]:
            r["inner"] = {"a": {}, "b": i}
        if rnd.random() < odd["tree"]:
            r["tree"] = nested(rnd.randrange(40, 61), i)
        if rnd.random() < odd["depths"]:
            r["deep"] = nested(rnd.randrange(1, 6), i)
        if rnd.random() < odd["shapes"]:
            r["attrs"] = rnd.choice([{"n": i, "more": {"x": [i, i + 1]}}, {"other": f"o{i}"}, {"n": i, "l": [{"k": i}]}])
        if rnd.random() < odd["lists"]:
            r["items"] = rnd.choice([[], [{}], [{"k": i}, {"j": f"v{i}"}], [[], [i]]])
        out.append(r)
    return out


def play(seed: int, p: dict[str, Any], workdir: Path) -> EdgeRun:
    run = EdgeRun(p, workdir)
    server = moto()
    bucket = f"lake-{seed}-{uuid.uuid4().hex[:8]}"
    server.client().create_bucket(Bucket=bucket)
    src = workdir / "in.jsonl"
    src.touch()
    records = rows(p)
    doc = {
        "pipeline": {"name": f"hs3-{seed}", "flow": "events >> lake"},
        "window": {"size": "5m", "time": "event", "time_field": "ts", "lateness": "10s", "idle_timeout": "1h"},
        "sources": {"events": {"type": "file", "path": str(src), "follow": True, "poll_interval": "50ms",
                               "batch_size": 100}},
        "sinks": {"lake": server.sink_config(bucket, prefix="raw/", format="parquet", compression=p["compression"])},
        "defaults": {"retry_delay": "100ms", "max_retry_delay": "1s"},
        "dead_letter": {"path": str(workdir / "dead" / "r0.jsonl")},
        "daemon": {"state_dir": str(workdir / "state" / "r0"), "commit_interval": "200ms", "shutdown_grace": "10s"},
    }
    run.start("r0", run.write_config("r0", doc))
    run.wait_running("r0")
    step = random.Random(seed * 11 + 1)
    n, k = len(records), p["chunks"]
    try:
        for c in range(k):
            lines = [orjson.dumps(r) for r in records[n * c // k:n * (c + 1) // k]]
            if p["too_deep"] and c == k // 2:  # past orjson's 254 levels: the sink cannot write it, alone
                at = records[n * (c + 1) // k - 1]["ts"]  # the time of the part's last row: never late
                lines.append(b'{"id": -2, "ts": %d, "deep": %s1%s}' % (at, b"[" * 300, b"]" * 300))
            with open(src, "ab") as fh:
                fh.write(b"".join(line + b"\n" for line in lines))
            for f in [f for f in p["faults"] if f["chunk"] == c]:
                run.kill_and_restart("r0", f["pause"])
            run.reap_ended()
            time.sleep(step.uniform(0.1, 0.5))
        with open(src, "ab") as fh:
            fh.write(orjson.dumps({"id": CLOSER_ID, "ts": BASE_MS + n * p["spacing_ms"] + 3_600_000}) + b"\n")
        read: dict[str, Any] = {}

        def ids() -> set[int]:
            read.update(read_bucket(server, bucket))
            return {r["id"] for r in read["rows"]}

        run.wait_complete(lambda: {r["id"] for r in records} <= ids(), lambda: (len(read.get("rows", [])),
                          read.get("etags")), stall_s=40, cap_s=240, what="the objects")
        run.terminate("r0")
        read.update(read_bucket(server, bucket))
        check(run, records, read, read_dead_letters(workdir / "dead"), p["too_deep"])
    finally:
        run.close()
    return run


def read_bucket(server: MotoServer, bucket: str) -> dict[str, Any]:
    """Every object's rows, read with pyarrow; objects pyarrow cannot open are listed, not raised."""
    import pyarrow.parquet as pq

    client = server.client()
    out: dict[str, Any] = {"rows": [], "unreadable": [], "objects": 0, "etags": []}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            out["objects"] += 1
            out["etags"].append(obj["ETag"])
            data = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            try:
                table = pq.read_table(io.BytesIO(data))
            except Exception as exc:  # noqa: BLE001 - what pyarrow says is the finding
                out["unreadable"].append(f"{obj['Key']}: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            as_json = {f.name for f in table.schema if f.metadata and f.metadata.get(b"rtstream.json")}
            for row in table.to_pylist():
                out["rows"].append({k: orjson.loads(v) if k in as_json and v is not None else v for k, v in row.items()})
    return out


def plain(v: Any) -> Any:
    """A value as JSON holds it, without the nulls a Parquet struct adds for fields a row lacks."""
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


def check(run: EdgeRun, records: list[dict[str, Any]], read: dict[str, Any], dead: list[dict[str, Any]],
          too_deep: bool) -> None:
    got: dict[int, list[dict[str, Any]]] = {}
    for r in read["rows"]:
        got.setdefault(r["id"], []).append(r)
    missing = [r["id"] for r in records if r["id"] not in got]
    twice = sorted(i for i, rs in got.items() if len(rs) > 1)
    changed = []
    for r in records:
        for back in got.get(r["id"], []):
            b = plain({k: v for k, v in back.items() if k not in ("window_start", "window_end")})
            if b != plain(r):
                changed.append((r["id"], sorted(k for k in set(r) | set(b) if plain(r.get(k)) != b.get(k))))
    run.figures.update(records=len(records), objects=read["objects"], rows_read_back=len(read["rows"]),
                       unreadable_objects=len(read["unreadable"]), dead_letters=len(dead))
    if read["unreadable"]:
        run.failures.append(f"s3: {len(read['unreadable'])} objects pyarrow cannot read: {read['unreadable'][:2]}")
    if missing:
        run.failures.append(f"s3: {len(missing)} of {len(records)} rows in no object, ids e.g. {missing[:8]}")
    if twice:
        run.failures.append(f"s3: {len(twice)} rows in more than one object, e.g. {twice[:5]}")
    if changed:
        run.failures.append(f"s3: {len(changed)} rows read back with other values, e.g. {changed[:3]}")
    expected = 1 if too_deep else 0
    odd_dead = [d for d in dead if not (too_deep and d.get("reason") == "sink_rejected" and '"id":-2' in str(d.get("value")))]
    if odd_dead or len(dead) < expected:
        run.failures.append(f"s3: {len(dead)} dead letters, {expected} expected (the row too deep for JSON), e.g. "
                            f"{[str(d)[:200] for d in odd_dead[:2]]}")
