"""Runs bench/nexmark/flink_job.py in the bench's Flink venv and reads back what it measured."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLINK_PY = ROOT / "bench" / ".venv-flink" / "bin" / "python"
JOB = Path(__file__).resolve().parent / "flink_job.py"


def flink_run(query: str, data: Path, out: Path, timeout: float = 1800) -> tuple[float, float]:
    """(wall s, CPU s) of one Flink SQL job over `data`, its rows as JSON lines under `out`."""
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryFile("w+") as err:
        done = subprocess.run([str(FLINK_PY), str(JOB), query, str(data), str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=err, text=True, timeout=timeout)
        if done.returncode != 0:
            err.seek(0)
            raise SystemExit(f"Flink {query} exited {done.returncode}:\n{err.read()[-5000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return float(figures["wall_s"]), float(figures["cpu_s"])
