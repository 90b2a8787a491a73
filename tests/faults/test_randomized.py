"""The randomized fault harness (tests/faults/harness): ten small seeds in `make test`, the long run
in `make soak` (make soak-random SEEDS=1-200). A failing seed prints the command that replays it."""

from __future__ import annotations

import os

import pytest

from tests.faults.harness.__main__ import parse_seeds
from tests.faults.harness.runner import run_seed
from tests.faults.harness.scenario import KNOWN_BUGS

# Product bugs open while this was written (see KNOWN_BUGS): the seeds step around them, and one
# test each below shows the bug until it is fixed. Empty it (HARNESS_KNOWN_BUGS=) to run everything.
KNOWN = frozenset(k for k in os.environ.get("HARNESS_KNOWN_BUGS", ",".join(KNOWN_BUGS)).split(",") if k)
FAST_SEEDS = parse_seeds(os.environ.get("HARNESS_FAST_SEEDS", "1-10"))


@pytest.mark.parametrize("seed", FAST_SEEDS)
def test_seed(seed, tmp_path):
    result = run_seed(seed, tmp_path, fast=True, known=KNOWN)
    print(result.report())
    assert result.ok, result.report()


@pytest.mark.xfail(reason="KNOWN_BUGS['deep_nested'] (issue 14 item 2): the daemon exits 1 on the record", strict=False)
def test_deep_nested_poison_is_dead_lettered_over_ingest(tmp_path):
    result = run_seed(5, tmp_path, fast=True, known=KNOWN - {"deep_nested"})
    assert result.ok, result.report()


@pytest.mark.xfail(reason="KNOWN_BUGS['http_key']: two replicas send one Idempotency-Key with different rows",
                   strict=False)
def test_two_replicas_never_share_an_idempotency_key(tmp_path):
    result = run_seed(1, tmp_path, fast=True, known=KNOWN - {"http_key"})
    assert result.ok, result.report()


@pytest.mark.xfail(reason="KNOWN_BUGS['mark_json']: file and spool commits fail on the Mark named tuple", strict=False)
def test_a_followed_file_commits_its_position(tmp_path):
    result = run_seed(9, tmp_path, fast=True, known=KNOWN - {"mark_json"})
    assert result.ok, result.report()
