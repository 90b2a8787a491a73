"""SIGKILL and SIGTERM of `rtstream run` scheduling a DAG every second, at random moments, restarted each
time: in the end every interval (computed here) ran exactly once and completely, with its own XComs.

In the suite a few seeded iterations run (DAG_RESTART_LOOPS, default 3; DAG_RESTART_SEED, default 1);
`DAG_RESTART_LOOPS=20` is the long run. A failing seed is printed with the assertion.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.dag_daemon_support import TickerSetup, check_exact, wait_for_new_lines
from tests.support import wait_until

LOOPS = int(os.environ.get("DAG_RESTART_LOOPS", os.environ.get("RTSTREAM_LOOPS", "3")))
SEED = int(os.environ.get("DAG_RESTART_SEED", "1"))
GRACE = 5.0


def _setup(tmp: Path) -> TickerSetup:
    now = int(time.time())
    # three seconds of intervals per loop (a loop takes about two) keeps runs due and in flight
    # through every interruption
    return TickerSetup(tmp, start=now - 3, end=now + 4 + 3 * LOOPS, grace=GRACE)


def _finish(setup: TickerSetup) -> None:
    """A last daemon runs what is left, then stops cleanly."""
    with setup.daemon() as d:
        wait_until(setup.all_done, 120, what="every interval done after the restarts")
        d.signal(signal.SIGTERM)
        assert d.wait(GRACE + 15) == 0, d.stderr[-3000:]


@pytest.mark.parametrize("seed", [SEED])
def test_sigkill_mid_run_then_restart_runs_every_interval_exactly_once(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    setup = _setup(tmp_path)
    killed_mid_try, cut_before = 0, set[tuple[str, str, int]]()
    for _ in range(LOOPS):
        before = len(setup.lines())
        with setup.daemon() as d:
            wait_for_new_lines(setup, before)
            time.sleep(rng.uniform(0.0, 1.5))  # the random moment of the kill
            d.kill()
        lines = setup.lines()
        started = {(r["ld"], r["task"], r["try"]) for r in lines if r["event"] == "start"}
        done = {(r["ld"], r["task"], r["try"]) for r in lines if r["event"] == "done"}
        cut = started - done  # tries that started and never finished: this kill's ones are new
        killed_mid_try += len(cut - cut_before) > 0
        cut_before = cut
    _finish(setup)
    tally = check_exact(setup, interrupted_tries_allowed=True)
    print(f"seed {seed}: {LOOPS} SIGKILLs ({killed_mid_try} with a try in flight), {tally}")
    assert tally["runs"] == len(setup.expected())


@pytest.mark.parametrize("seed", [SEED])
def test_sigterm_mid_run_exits_0_within_the_grace_and_the_rest_runs_after_restart(tmp_path: Path,
                                                                                  seed: int) -> None:
    rng = random.Random(seed)
    setup = _setup(tmp_path)
    left_running = 0
    for _ in range(LOOPS):
        before = len(setup.lines())
        with setup.daemon() as d:
            wait_for_new_lines(setup, before)
            time.sleep(rng.uniform(0.0, 1.5))
            t0 = time.monotonic()
            d.signal(signal.SIGTERM)
            assert d.wait(GRACE + 15) == 0, d.stderr[-3000:]
            took = time.monotonic() - t0
        assert took < GRACE + 2, f"SIGTERM took {took:.1f}s (grace {GRACE}s)"
        left_running += sum(s == "running" for s in setup.runs().values())
    _finish(setup)
    tally = check_exact(setup, interrupted_tries_allowed=False)  # every try finished within the grace
    print(f"seed {seed}: {LOOPS} SIGTERMs ({left_running} runs left unfinished and resumed), {tally}")
