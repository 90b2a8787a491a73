"""The workers supervisor stopped at any moment of its start-up: exit 0 after a clean stop."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

from rtstream.testing.peers.ports import free_port
from tests.integration.test_workers import _config
from tests.kafka_helpers import new_topics
from tests.support import Daemon


def _workers_of(config: Path) -> list[int]:
    """Pids of live processes started with this config (the supervisor's workers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if str(config).encode() in cmd:
                pids.append(int(entry))
    return pids


def _catches_sigterm(pid: int) -> bool:
    """The process has a handler for SIGTERM (/proc's SigCgt): its Python is running rtstream.

    Before that moment (the interpreter's own start, about 50 ms) the kernel's default action ends
    it with -15, and no program can do otherwise; from it on, a SIGTERM is a clean stop.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def test_sigterm_at_any_moment_of_the_start_up_exits_zero(tmp_path, kafka):
    topic, _, group = new_topics(kafka.bootstrap, 2)
    rnd = random.Random()
    tally: list[tuple[float, int]] = []
    for i in range(20):
        run_dir = tmp_path / f"run{i}"
        run_dir.mkdir()
        cfg = _config(run_dir, kafka.bootstrap, topic, group, finite=False, admin=free_port())
        delay = rnd.uniform(0.0, 1.5)
        with Daemon(cfg, run_dir) as d:
            deadline = time.monotonic() + 10
            while not _catches_sigterm(d.proc.pid) and time.monotonic() < deadline:
                time.sleep(0.002)
            assert _catches_sigterm(d.proc.pid), "the supervisor never caught SIGTERM"
            time.sleep(delay)  # the moment of the stop is what is tested, not a wait for a condition
            d.signal(signal.SIGTERM)
            code = d.wait(60)
            tally.append((round(delay, 3), code))
            assert code == 0, (delay, code, d.stderr[-3000:])
            assert "Traceback" not in d.stderr
        deadline = time.monotonic() + 10
        while _workers_of(cfg) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _workers_of(cfg), f"workers left running after the supervisor exited (delay {delay:.3f})"
    print("delays and exit codes:", tally)
