"""`is_venv_installed()` answers as Airflow 2.10's: virtualenv's command on PATH or its module importable.
Airflow's example_python_operator / example_python_decorator create their virtualenv tasks only when
it is true (the corpus recording has none: virtualenv was not installed for the oracle, nor is it here)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from rtstream.airflow.venv_check import is_venv_installed


def test_virtualenv_on_the_path_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    if importlib.util.find_spec("virtualenv") is None:
        assert is_venv_installed() is False
    tool = tmp_path / "virtualenv"
    tool.write_text("#!/bin/sh\n")
    os.chmod(tool, 0o755)
    assert is_venv_installed() is True


def test_the_stand_in_gives_the_real_check(stand_in: None) -> None:
    from airflow.operators.python import is_venv_installed as from_airflow  # type: ignore[import-not-found]

    assert from_airflow is is_venv_installed
