"""Long scenarios for `make soak` (left out of `make test`)."""

from __future__ import annotations

import signal
import time

import pytest

from tests.support import Daemon, wait_until, write_config

SLOW_RSS_BOUND_MB = 200


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.soak
def test_slow_sink_keeps_memory_flat_while_input_keeps_coming(tmp_path):
    (tmp_path / "flaky").mkdir()
    doc = {
        "pipeline": {"name": "slow", "flow": "gen >> per_user >> slow"},
        "window": {"size": "1s", "lateness": "0s"},
        "sources": {"gen": {"type": "generator", "rate": 50_000, "realtime": False, "users": 10_000}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}}},
        "sinks": {"slow": {"type": "python", "call": "tests.faults.flaky:slow_sink"}},
        "daemon": {"state_dir": str(tmp_path / "state"), "shutdown_grace": "5s"},
    }
    samples = []
    with Daemon(write_config(tmp_path / "s.toml", doc), tmp_path,
                env={"SLOW_SINK_SECONDS": "2", "FLAKY_STATE": str(tmp_path / "flaky")}) as d:
        wait_until(lambda: "flushed" in d.stderr, 60, what="the first slow write")
        for _ in range(12):  # a minute of a sink 2 s per window behind an input that never stops
            time.sleep(5)
            samples.append(rss_mb(d.proc.pid))
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
    print(f"RSS samples (MB): {[round(s) for s in samples]}")
    assert max(samples) < SLOW_RSS_BOUND_MB
    assert max(samples[2:]) <= samples[2] * 1.10  # flat once the queues are full
