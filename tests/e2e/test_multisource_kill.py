"""Two sources feeding one aggregate commit one after the other: a SIGKILL between their commits
must not rewrite a window. The kill is placed by a shim (tests/shims/kill_after_save) right after
the first commit that carries a mark is on disk, so the round is cut after the first source's save
and before the second's, every run. The restart replays the second source from its older position;
each window must still hold both sources' records, once (compared with a computation over all the
records)."""

from __future__ import annotations

import os
import random
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.data import BASE_MS
from tests.support import LOOPS, Daemon, wait_until, window_files, write_config

SHIMS = Path(__file__).resolve().parent.parent / "shims"
MIN = 60_000
LATENESS = 30_000
SOURCES = ("left", "right")


def shim_env(**extra: str) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(SHIMS / "kill_after_save"), os.environ.get("PYTHONPATH", "")]),
            **extra}


def records(rnd: random.Random, start_min: int, end_min: int) -> list[dict[str, Any]]:
    """Records from start to end (minutes), out of order by less than the lateness, ending at
    end - 10 s so every source moves the watermark as far."""
    times = sorted(rnd.randrange(start_min * MIN, end_min * MIN - 10_000) for _ in range(rnd.randint(20, 60)))
    times.append(end_min * MIN - 10_000)
    for i in range(len(times) - 1):
        if rnd.random() < 0.3 and times[i + 1] - times[i] < LATENESS - 10_000:
            times[i], times[i + 1] = times[i + 1], times[i]
    return [{"user_id": f"u{rnd.randrange(4)}", "ts": BASE_MS + t, "amount": rnd.randint(1, 100)} for t in times]


def windows_of(ts: int, size: int, hop: int) -> list[int]:
    last = (ts - BASE_MS) // hop * hop
    return [BASE_MS + s for s in range(last - size + hop, last + hop, hop)]


def reference(recs: list[dict[str, Any]], size: int, hop: int, upto: int) -> dict[tuple[int, str], tuple[int, int]]:
    out: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in recs:
        for start in windows_of(r["ts"], size, hop):
            if start + size <= upto:
                out[(start, r["user_id"])][0] += 1
                out[(start, r["user_id"])][1] += r["amount"]
    return {k: (n, s) for k, (n, s) in out.items()}


def append(path: Path, recs: list[dict[str, Any]]) -> None:
    with open(path, "ab") as fh:
        fh.write(b"".join(orjson.dumps(r) + b"\n" for r in recs))


def position(state: Path, name: str) -> dict[str, Any]:
    f = state / "positions" / f"{name}.json"
    return orjson.loads(f.read_bytes()) if f.exists() else {}


def config(tmp_path: Path, window: dict[str, Any]) -> Path:
    doc: dict[str, Any] = {
        "pipeline": {"name": "two", "flow": "[left, right] >> per_user >> out"},
        "window": {**window, "lateness": "30s"},
        "sources": {name: {"type": "file", "path": str(tmp_path / f"{name}.jsonl"), "follow": True,
                           "poll_interval": "50ms"} for name in SOURCES},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id",
                                "aggregates": {"events": "count()", "spent": "sum(amount)"}}},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out"), "fsync": False}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms", "shutdown_grace": "10s"},
    }
    return write_config(tmp_path / "two.toml", doc)


WINDOWS = {"tumbling": ({"size": "5m"}, 5 * MIN, 5 * MIN),
           "hopping": ({"type": "hopping", "size": "4m", "hop": "2m"}, 4 * MIN, 2 * MIN)}


def sink_rows(out: Path) -> dict[tuple[int, str], tuple[int, int]]:
    from rtstream.windows.clock import epoch_ms

    return {(epoch_ms(r["window_start"]), r["user_id"]): (r["events"], r["spent"])
            for rows in window_files(out).values() for r in rows}


@pytest.mark.parametrize("seed", range(LOOPS))
@pytest.mark.parametrize("kind", sorted(WINDOWS))
def test_a_kill_between_two_sources_commits_rewrites_no_window(tmp_path: Path, kind: str, seed: int) -> None:
    rnd = random.Random(f"{kind}:{seed}")
    window, size, hop = WINDOWS[kind]
    cfg = config(tmp_path, window)
    state, out = tmp_path / "state", tmp_path / "out"
    first = {name: records(rnd, 0, 15) for name in SOURCES}
    for name in SOURCES:
        append(tmp_path / f"{name}.jsonl", first[name])
    with Daemon(cfg, tmp_path, env=shim_env()) as d:
        assert d.wait(120) == -9, d.stderr[-3000:]  # killed by the shim after one source's marked commit
    marked = [name for name in SOURCES if (position(state, name).get("mark"))]
    assert len(marked) == 1, {name: position(state, name) for name in SOURCES}  # the kill cut the round
    behind = next(name for name in SOURCES if name not in marked)
    written_before = sink_rows(out)
    assert written_before  # the first windows were written, whole, before the kill

    second = {name: records(rnd, 15, 25) for name in SOURCES}
    with Daemon(cfg, tmp_path) as d:
        # the source behind has replayed and committed with a mark: what it replayed is settled
        wait_until(lambda: position(state, behind).get("mark"), 60, what=f"a marked commit of {behind}")
        for name in SOURCES:
            append(tmp_path / f"{name}.jsonl", second[name])
        upto = BASE_MS + 25 * MIN - 10_000 - LATENESS  # the watermark once both have read everything
        want = reference([r for name in SOURCES for r in first[name] + second[name]], size, hop, upto)
        last = max(start for start, _ in want)
        wait_until(lambda: any(start == last for start, _ in sink_rows(out)), 60, what="the last closed window")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    got = sink_rows(out)
    wrong = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
    assert not wrong, f"{len(wrong)} of {len(want)} (window, key) rows differ (got, want): {sorted(wrong.items())[:8]}"
    assert set(got) == set(want)
    dead = tmp_path / "dead.jsonl"
    assert not dead.exists() or not dead.read_text().strip(), dead.read_text()[:2000]


def branched_config(tmp_path: Path) -> Path:
    """Two branches, each folding both sources: one commit rule, one engine per branch."""
    doc: dict[str, Any] = {
        "pipeline": {"name": "two-branches",
                     "flow": "[left, right] >> per_user >> out\n[left, right] >> per_user_hop >> out_hop"},
        "window": {"size": "5m", "lateness": "30s"},
        "sources": {name: {"type": "file", "path": str(tmp_path / f"{name}.jsonl"), "follow": True,
                           "poll_interval": "50ms"} for name in SOURCES},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id",
                                "aggregates": {"events": "count()", "spent": "sum(amount)"}},
                   "per_user_hop": {"type": "aggregate", "key": "user_id",
                                    "aggregates": {"events": "count()", "spent": "sum(amount)"},
                                    "window": {"type": "hopping", "size": "4m", "hop": "2m"}}},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out"), "fsync": False},
                  "out_hop": {"type": "file", "path": str(tmp_path / "out_hop"), "fsync": False}},
        "state": {"checkpoint_interval": "200ms"},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms", "shutdown_grace": "10s"},
    }
    return write_config(tmp_path / "branches.toml", doc)


@pytest.mark.parametrize("seed", range(LOOPS))
@pytest.mark.parametrize("checkpoints", ["kept", "lost"])
def test_a_kill_between_two_sources_commits_rewrites_no_window_of_any_branch(tmp_path: Path, checkpoints: str,
                                                                            seed: int) -> None:
    """Branches keep one commit rule: the same cut round, with the checkpoint store kept (restored
    from it) or lost (a host without it replays from the commits)."""
    rnd = random.Random(f"branches:{checkpoints}:{seed}")
    cfg = branched_config(tmp_path)
    state = tmp_path / "state"
    first = {name: records(rnd, 0, 15) for name in SOURCES}
    for name in SOURCES:
        append(tmp_path / f"{name}.jsonl", first[name])
    with Daemon(cfg, tmp_path, env=shim_env()) as d:
        assert d.wait(120) == -9, d.stderr[-3000:]
    marked = [name for name in SOURCES if (position(state, name).get("mark"))]
    assert len(marked) == 1, {name: position(state, name) for name in SOURCES}
    behind = next(name for name in SOURCES if name not in marked)
    if checkpoints == "lost":
        for f in state.glob("checkpoints.db*"):
            f.unlink()
    second = {name: records(rnd, 15, 25) for name in SOURCES}
    upto = BASE_MS + 25 * MIN - 10_000 - LATENESS
    everything = [r for name in SOURCES for r in first[name] + second[name]]
    wants = {"out": reference(everything, 5 * MIN, 5 * MIN, upto), "out_hop": reference(everything, 4 * MIN, 2 * MIN, upto)}
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: position(state, behind).get("mark"), 60, what=f"a marked commit of {behind}")
        for name in SOURCES:
            append(tmp_path / f"{name}.jsonl", second[name])
        for sink, want in wants.items():
            last = max(start for start, _ in want)
            wait_until(lambda: any(start == last for start, _ in sink_rows(tmp_path / sink)), 60,  # noqa: B023
                       what=f"the last closed window of {sink}")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    for sink, want in wants.items():
        got = sink_rows(tmp_path / sink)
        wrong = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
        assert not wrong, f"{sink}: {len(wrong)} of {len(want)} rows differ (got, want): {sorted(wrong.items())[:8]}"
        assert set(got) == set(want), sink
    dead = tmp_path / "dead.jsonl"
    assert not dead.exists() or not dead.read_text().strip(), dead.read_text()[:2000]
