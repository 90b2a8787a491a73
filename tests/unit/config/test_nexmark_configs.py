"""bench/nexmark's query configs as shipped: all validate; the pending ones (not exact with the stages
as they are, bench/nexmark/README.md says why) are kept out of the tests' and the bench's queries."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.nexmark.variants import QUERIES
from tests.support import run_cli

HERE = Path(__file__).resolve().parents[3] / "bench" / "nexmark"
RUNNABLE = ["q0", "q1", "q2", "q3_keyed", "q4", "q5", "q7", "q8", "q8_join", "q11", "q12"]
# verified by tests/e2e/test_nexmark_queries.py against its own reference (q3: the temporal join, as of each
# auction's time), out of the bench's queries, whose Flink side runs Nexmark's regular join
APART = ["q3"]


def test_every_query_config_is_listed_here() -> None:
    assert {p.stem for p in HERE.glob("q*.toml")} == set(RUNNABLE) | set(APART)


@pytest.mark.parametrize("query", APART)
def test_a_query_verified_apart_validates_and_says_so(query: str) -> None:
    done = run_cli("validate", "-c", str(HERE / f"{query}.toml"))
    assert done.returncode == 0, done.stderr
    assert query not in QUERIES
    row = (HERE / "README.md").read_text().split(f"| {query} |")[1].split("\n")[0]
    assert "exact against the as-of reference" in row and "**pending**" not in row


@pytest.mark.parametrize("query", RUNNABLE)
def test_a_runnable_query_config_validates_as_shipped(query: str) -> None:
    done = run_cli("validate", "-c", str(HERE / f"{query}.toml"))
    assert done.returncode == 0, done.stderr


def test_the_runnable_queries_are_the_verified_ones() -> None:
    assert set(RUNNABLE) <= set(QUERIES)
