"""`airflow.operators.python.is_venv_installed`, as Airflow 2.10 answers it: the virtualenv package is
installed (its command on PATH, or its module importable). DAG files branch on it (Airflow's own
example_python_operator creates its virtualenv tasks only when it is true), so it must answer as
Airflow would on this machine, never as a placeholder."""

from __future__ import annotations

import importlib.util
import shutil


def is_venv_installed() -> bool:
    return bool(shutil.which("virtualenv") or importlib.util.find_spec("virtualenv"))
