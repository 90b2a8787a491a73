"""Re-running one window from the status page: `rtstream backfill` of that window, as its own process.

Airflow's "clear" re-runs a task for one run; here a window is rebuilt from its sources' history
and written to the sinks again (they upsert, so the window replaces itself). The backfill runs as a
child process with the daemon's config file and overrides: its own event loop and temporary state,
nothing shared with the live pipeline but the sinks. Its outcome (exit code, last output lines) is
kept for the page; at most MAX_RUNNING run at once, one per window.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sys
import time
from typing import Any

log = logging.getLogger("rtstream.admin")
MAX_RUNNING = 2
KEPT = 50  # finished re-runs remembered for the page
OUTPUT_LINES = 20


class RerunRefused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Reruns:
    def __init__(self, config_path: str | None, overrides: list[str]):
        self.config_path = config_path
        self.overrides = overrides
        self.runs: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._procs: set[asyncio.subprocess.Process] = set()

    def refusal(self, has_token: bool) -> str | None:
        """Why no window can be re-run from the page, in words for its panel (not a tooltip); None when one can."""
        if self.config_path is None:
            return "This pipeline was started from Python, so there is no config file to re-run a window from."
        if not has_token:
            return ("Re-running a window needs an admin token: set admin.token (e.g. start with "
                    "RTSTREAM_ADMIN_TOKEN=<secret>) and open this page with ?token=<secret>.")
        return None

    def start(self, window_start: str, window_end: str) -> dict[str, Any]:
        """Begin re-running the window; returns its record (state "running")."""
        if self.config_path is None:
            raise RerunRefused(409, "a pipeline started from Python has no config file to backfill from")
        current = self.runs.get(window_start)
        if current is not None and current["state"] == "running":
            raise RerunRefused(409, f"window {window_start} is being re-run already")
        if sum(r["state"] == "running" for r in self.runs.values()) >= MAX_RUNNING:
            raise RerunRefused(429, f"{MAX_RUNNING} re-runs are running already; try again when one ends")
        run = {"window_start": window_start, "window_end": window_end, "state": "running", "started": time.time(),
               "ended": None, "exit_code": None, "output": []}
        self.runs.pop(window_start, None)
        self.runs[window_start] = run
        while len(self.runs) > KEPT:
            self.runs.popitem(last=False)
        task = asyncio.create_task(self._run(run), name=f"rerun-{window_start}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.warning("re-running window %s from the status page (a backfill of that window)", window_start,
                    extra={"window": window_start})
        return run

    async def _run(self, run: dict[str, Any]) -> None:
        assert self.config_path is not None
        args = ["-m", "rtstream", "backfill", "-c", self.config_path, "--from", run["window_start"],
                "--to", run["window_end"]]
        for item in self.overrides:
            args += ["--set", item]
        try:
            proc = await asyncio.create_subprocess_exec(sys.executable, *args, stdin=asyncio.subprocess.DEVNULL,
                                                        stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.STDOUT)
        except OSError as exc:
            run.update(state="failed", ended=time.time(), output=[f"could not start the backfill: {exc}"])
            return
        self._procs.add(proc)
        lines: collections.deque[str] = collections.deque(maxlen=OUTPUT_LINES)
        try:
            assert proc.stdout is not None
            async for raw in proc.stdout:
                lines.append(raw.decode(errors="replace").rstrip()[:500])
                run["output"] = list(lines)
            code = await proc.wait()
        finally:
            self._procs.discard(proc)
        run.update(state="success" if code == 0 else "failed", exit_code=code, ended=time.time(), output=list(lines))
        level = logging.INFO if code == 0 else logging.ERROR
        log.log(level, "re-run of window %s %s (exit %d)", run["window_start"], "done" if code == 0 else "failed",
                code, extra={"window": run["window_start"]})

    async def close(self) -> None:
        procs = list(self._procs)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in procs:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
