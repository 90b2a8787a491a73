"""The package's layout is a test: the layers of pyproject.toml's import contracts, modules of one job
(none over 300 lines), and nothing loose at the package root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "rtstream"
MAX_LINES = 300


def test_import_contracts_hold() -> None:
    exe = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_nothing_loose_at_the_package_root() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert loose == [], f"modules belong in a room (a package), not at rtstream/: {loose}"


def test_no_module_over_300_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}, f"a module over {MAX_LINES} lines has two jobs: {long}"
