"""bench/nexmark's query configs as shipped: the runnable ones validate, the pending ones are refused
for the join stage they wait for (when it lands, this test says to move them to the runnable list)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import run_cli

HERE = Path(__file__).resolve().parents[3] / "bench" / "nexmark"
RUNNABLE = ["q0", "q1", "q2", "q5", "q7", "q8", "q11"]
PENDING = {"q3": "table_join", "q4": "interval_join", "q8_join": "join"}


def test_every_query_config_is_listed_here() -> None:
    assert {p.stem for p in HERE.glob("q*.toml")} == set(RUNNABLE) | set(PENDING)


@pytest.mark.parametrize("query", RUNNABLE)
def test_a_runnable_query_config_validates_as_shipped(query: str) -> None:
    done = run_cli("validate", "-c", str(HERE / f"{query}.toml"))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("query", "stage"), PENDING.items())
def test_a_pending_query_config_waits_for_its_join_stage(query: str, stage: str) -> None:
    done = run_cli("validate", "-c", str(HERE / f"{query}.toml"))
    assert done.returncode == 2, f"{query}.toml validates now: run it, verify it and list it as runnable"
    assert f"unknown stage type '{stage}'" in done.stderr
