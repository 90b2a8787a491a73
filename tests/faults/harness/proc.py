"""Which `rtstream` the harness runs: this tree's (`python -m rtstream`), or another installed
executable given with `--rtstream PATH` (an older tree in a venv of its own, to show what a seed
finds on code before a fix)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.support import ROOT, Daemon, rtstream_cmd

TARGET: list[str] = []  # empty: this tree's rtstream


def command(*args: str) -> list[str]:
    return [*TARGET, *args] if TARGET else rtstream_cmd(*args)


class Process(Daemon):
    """tests.support.Daemon, started with `command("run", ...)`: the daemon under test."""

    def __init__(self, config: Path, workdir: Path, *extra: str, env: dict[str, str] | None = None):
        self.config = config
        self.out_path = workdir / f"daemon-{time.monotonic_ns()}.out"
        self.err_path = self.out_path.with_suffix(".err")
        self._out = open(self.out_path, "wb")  # noqa: SIM115 - closed by wait() or kill()
        self._err = open(self.err_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(command("run", "-c", str(config), *extra), stdout=self._out,
                                     stderr=self._err, cwd=ROOT, env={**os.environ, **(env or {})})

# --plain-sql-cursor: the daemon under test predates the sql source's tiebreak_field and settle, so
# the sql scenarios configure it as its users had to (`WHERE ts > :cursor` or `WHERE id > :cursor`)
PLAIN_SQL_CURSOR = False
