"""The venv of the operator bridge's tests (tests/compat/test_bridge.py): the real apache-airflow pinned
as the oracle pins it (corpus.toml's first Airflow and its constraints file) with this checkout's
rtstream installed editable beside it, as `pip install 'rtstream[airflow]'` gives a user.

    python3.11 -m tests.compat.bridge_venv      (make compat runs it; several minutes the first time)

Kept at the checkout's root (.venv-airflow-bridge, git-ignored) and reused while it holds that Airflow
and this checkout's rtstream. Standard library only.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.compat.oracle import ROOT, load_corpus

VENV = ROOT / ".venv-airflow-bridge"


def airflow_pin() -> tuple[str, Path]:
    first = load_corpus()["airflow"][0]
    return first["version"], ROOT / first["constraints"]


def ready() -> bool:
    """Does the venv hold the pinned Airflow and this checkout's rtstream?"""
    python = VENV / "bin" / "python"
    if not python.exists():
        return False
    version, _ = airflow_pin()
    probe = ("import airflow, rtstream, pathlib; "
             "print(airflow.__version__, pathlib.Path(rtstream.__file__).resolve().parents[1])")
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(VENV / "airflow-home")})
    return done.returncode == 0 and done.stdout.split() == [version, str(ROOT)]


def ensure() -> Path:
    if ready():
        return VENV
    version, constraints = airflow_pin()
    if sys.version_info[:2] not in ((3, 10), (3, 11), (3, 12)):
        sys.exit(f"apache-airflow {version} is pinned for Python 3.10-3.12; run this with python3.11")
    print(f"bridge venv: apache-airflow=={version} and rtstream into {VENV} (several minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = str(VENV / "bin" / "pip")
    subprocess.run([pip, "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([pip, "install", "-q", f"apache-airflow=={version}", "-c", str(constraints)], check=True)
    subprocess.run([pip, "install", "-q", "-e", str(ROOT), "-c", str(constraints)], check=True)
    if not ready():
        sys.exit(f"bridge venv: {VENV} does not import airflow {version} and this rtstream")
    return VENV


if __name__ == "__main__":
    print(ensure())
