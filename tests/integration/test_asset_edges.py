"""A sink's `asset = "URI"` runs the DAGs scheduled on it: pipeline -> dag_a -> dag_b through the real
daemon on the test broker, each window's event kept once and consumed by one successful run, across
SIGKILLs at random moments."""

from __future__ import annotations

import os
import random

import pytest

from tests.integration.asset_edges_support import ChainSetup, finish, kill_until_done


def test_each_written_window_runs_dag_a_then_dag_b_once(tmp_path, kafka):
    setup = ChainSetup(tmp_path, kafka.bootstrap, fail_first=True)  # dag_a's first try of each run fails
    finish(setup)
    tally = setup.check_chain()
    assert tally["windows"] == 5 and tally["dag_a_runs"] >= 1, tally


SEEDS = [int(s) for s in os.environ.get("RTSTREAM_ASSET_SEEDS", "1,2").split(",")]


@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_at_random_moments_each_window_runs_the_chain_once(tmp_path, kafka, seed):
    setup = ChainSetup(tmp_path, kafka.bootstrap, seed=seed, events=3000, span_s=600, fail_first=True, slow_s=0.2)
    kills = kill_until_done(setup, random.Random(seed), max_kills=int(os.environ.get("RTSTREAM_ASSET_KILLS", "4")))
    tally = setup.check_chain(whole=False)
    print(f"seed {seed}: {kills} {tally}")
