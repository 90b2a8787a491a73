"""A window triggers a DAG run and the offsets wait for the run: the real daemon, the test broker,
a pipeline of 4 partitions and a DAG whose task fails on purpose."""

from __future__ import annotations

import os
import random
import signal
import subprocess

import pytest

from tests.integration.dag_sink_support import WindowDagSetup
from tests.support import wait_until


def test_no_offset_is_committed_while_the_run_fails_then_all_once_it_succeeds(tmp_path, kafka):
    setup = WindowDagSetup(tmp_path, kafka.bootstrap)
    (setup.out / "FAIL_WHILE").write_text("")
    with setup.daemon() as d:
        # the first window's run failed, was cleared and failed again: a retry of the same run
        wait_until(lambda: any(t[2] >= 3 for t in setup.tries("check")) or d.proc.poll() is not None, 60,
                   what="the first window's run to fail three times")
        assert d.proc.poll() is None, d.stderr
        # the first window holds every partition's first record (offset 0): nothing past it may be committed
        held = setup.committed()
        assert all(c in (None, 0) for c in held.values()), f"an offset was committed before the run succeeded: {held}"
        runs = setup.runs()
        assert len(runs) == 1 and runs[0][2] in ("failed", "running"), runs  # the later windows queue behind it
        assert not list(setup.out.glob("*.json"))
        (setup.out / "FAIL_WHILE").unlink()
        assert d.wait(120) == 0, d.stderr
    tally = setup.check_exactly_one_run_per_window()
    first = setup.runs()[0][1]
    check_tries = dict((r, (s, n)) for r, s, n in setup.tries("check"))
    assert check_tries[first][0] == "success" and check_tries[first][1] >= 3, check_tries[first]
    assert tally["store_tries"] == tally["runs"] == tally["windows"]  # nothing stored twice, no piece


def kill_until_done(setup: WindowDagSetup, rnd: random.Random, max_kills: int) -> dict[str, int]:
    """Start the daemon and SIGKILL it at a random moment, again and again, then let it finish;
    returns how many kills, and how many of them came while a window's run was running."""
    kills = mid_run = finishing = 0
    while True:
        with setup.daemon() as d:
            if kills < max_kills:
                try:
                    d.proc.wait(rnd.uniform(0.5, 3.5))  # the random moment (or the daemon finished first)
                except subprocess.TimeoutExpired:
                    d.proc.send_signal(signal.SIGKILL)
                    d.proc.wait(10)
                    kills += 1
                    mid_run += any(state == "running" for _, _, state in setup.runs())
                    continue
            code = d.wait(180)
            assert code == 0, d.stderr
        finishing += 1
        # stop_at_end ends at the end of the partitions this process was given: while the killed process is
        # still a member of the group (its session not yet expired) that may be some of them only
        if setup.committed() == setup.ends() or finishing >= 5:
            return {"kills": kills, "mid_run": mid_run, "finishing_runs": finishing}


SEEDS = [int(s) for s in os.environ.get("RTSTREAM_DAG_SINK_SEEDS", "1,2,3").split(",")]


@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_at_random_moments_every_window_reaches_one_successful_run(tmp_path, kafka, seed):
    setup = WindowDagSetup(tmp_path, kafka.bootstrap, seed=seed, fail_first=True, events=3000, span_s=600,
                           slow_s=0.2)
    kills = kill_until_done(setup, random.Random(seed), max_kills=int(os.environ.get("RTSTREAM_DAG_SINK_KILLS", "4")))
    tally = setup.check_exactly_one_run_per_window()
    print(f"seed {seed}: {kills} {tally}")
