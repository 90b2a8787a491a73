"""The Airflow 3.x half of the corpus replay (tests/compat/test_compat.py has the rest and the rules)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.compat.test_compat import cases, replay_and_compare, rtstream_has_dags


@pytest.mark.skipif(not rtstream_has_dags(), reason="`rtstream dags` is not there yet (rtstream dags --help fails)")
@pytest.mark.parametrize("path", cases("3"))
def test_rtstream_runs_the_dag_as_airflow_3_did(path: Path, tmp_path: Path) -> None:
    replay_and_compare(path, tmp_path)
