"""What the scenarios of the newer edges share: the daemon processes of one run (started, killed and
restarted, stopped), waiting for outputs to complete while they still grow, and the error lines of
every log. Each kind (sql, lookup, s3, eos) builds its config and its peers on top."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.faults.harness.proc import Process
from tests.support import wait_until, write_config

ERROR_LINE = re.compile(r" ERROR |Traceback|CRITICAL")


class EdgeRun:
    def __init__(self, params: dict[str, Any], workdir: Path):
        self.p = params
        self.dir = workdir
        self.failures: list[str] = []
        self.faults: Counter[str] = Counter()
        self.skipped: list[str] = []
        self.figures: dict[str, int] = {}
        self.procs: dict[str, Process | None] = {}
        self.exits: dict[str, list[int | None]] = {}
        for sub in ("out", "state", "logs", "dead"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)

    def write_config(self, name: str, doc: dict[str, Any]) -> Path:
        return write_config(self.dir / f"{name}.toml", doc)

    # -- processes -------------------------------------------------------------------------------
    def start(self, name: str, config: Path, env: dict[str, str] | None = None, *extra: str) -> Process:
        logs = self.dir / "logs" / name
        logs.mkdir(parents=True, exist_ok=True)
        proc = Process(config, logs, *extra, env=env)
        proc.start_args = (config, env, extra)  # type: ignore[attr-defined]
        self.procs[name] = proc
        self.exits.setdefault(name, [])
        return proc

    def wait_running(self, name: str, timeout: float = 60) -> None:
        """Until the daemon logged that its pipeline runs."""
        proc = self.procs[name]
        wait_until(lambda: proc is None or " running: " in proc.stderr or proc.proc.poll() is not None, timeout,
                   what=f"{name} running")

    def running(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.proc.poll() is None

    def kill_and_restart(self, name: str, pause_s: float, wait: bool = True) -> None:
        proc = self.procs.get(name)
        if proc is None:
            self.skipped.append(f"kill: {name} not running")
            return
        config, env, extra = proc.start_args  # type: ignore[attr-defined]
        proc.kill()
        self.exits[name].append(None)
        time.sleep(pause_s)
        self.start(name, config, env, *extra)
        self.faults["kill"] += 1
        if wait:  # before the next fault: a store or broker down at a daemon's very start fails the start (exit 1)
            self.wait_running(name)

    def reap_ended(self) -> None:
        """A daemon that ended on its own is a failure (these runs are live)."""
        for name, proc in self.procs.items():
            if proc is not None and proc.proc.poll() is not None:
                code = proc.wait(1)
                self.exits[name].append(code)
                self.procs[name] = None
                self.failures.append(f"{name} exited on its own with {code}: {tail(proc.err_path, 600)}")

    def terminate(self, name: str, timeout: float = 30, expect: int | None = 0) -> int | None:
        proc = self.procs.get(name)
        if proc is None:
            return None
        proc.signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = -9
        self.exits[name].append(code)
        self.procs[name] = None
        if expect is not None and code != expect:
            self.failures.append(f"{name} ended on SIGTERM with exit {code}: {tail(proc.err_path, 800)}")
        return code

    def close(self) -> None:
        for proc in self.procs.values():
            if proc is not None and proc.proc.poll() is None:
                proc.kill()

    # -- waiting and logs ------------------------------------------------------------------------
    def wait_complete(self, complete: Callable[[], bool], progress: Callable[[], Any], stall_s: float,
                      cap_s: float, what: str) -> bool:
        """Wait until `complete()`, while `progress()` keeps changing (slow is not stuck), up to a cap."""
        began = last = time.monotonic()
        seen: Any = object()
        while not complete():
            now = time.monotonic()
            value = progress()
            if value != seen:
                seen, last = value, now
            if now - last > stall_s or now - began > cap_s:
                self.failures.append(f"{what} never complete: {now - last:.0f}s without progress, "
                                     f"{now - began:.0f}s in all; " + " | ".join(
                                         f"{n}: {tail(p.err_path, 400)}" for n, p in self.procs.items() if p))
                return False
            self.reap_ended()
            if not any(self.procs.values()):
                return complete()
            time.sleep(0.3)
        return True

    def error_lines(self, name: str | None = None) -> list[str]:
        lines = []
        for log in sorted((self.dir / "logs").glob(f"{name or '*'}/daemon-*.err")):
            lines += [ln for ln in log.read_text(errors="replace").splitlines() if ERROR_LINE.search(ln)]
        return lines


def tail(path: Path, n: int) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def uniform(rnd: Any, lo: float, hi: float) -> float:
    return round(rnd.uniform(lo, hi), 2)
