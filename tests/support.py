"""Helpers the test suites share: config files, the real daemon as a process, waiting on conditions."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent


# How many times `make test` runs each looped kill/restart/SIGTERM test (different seeds each); `make
# loops` (part of `make soak`) runs them RTSTREAM_LOOPS=20 times. A loop that fails once in twenty is a
# failing test: the suite keeps a few seeds of each so that a regression shows on every run.
LOOPS = int(os.environ.get("RTSTREAM_LOOPS", "3"))


def wait_until(cond: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll `cond` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return orjson.dumps(v).decode()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def to_toml(doc: dict[str, Any]) -> str:
    """Enough TOML for test configs: tables of scalars, nested one or two levels."""
    out: list[str] = []

    def table(prefix: str, body: dict[str, Any]) -> None:
        scalars = {k: v for k, v in body.items() if not (isinstance(v, dict) and _is_table(v))}
        out.append(f"[{prefix}]")
        out.extend(f"{k} = {toml_value(v)}" for k, v in scalars.items())
        out.append("")
        for k, v in body.items():
            if isinstance(v, dict) and _is_table(v):
                table(f"{prefix}.{k}", v)

    for key, body in doc.items():
        table(key, body)
    return "\n".join(out)


def _is_table(v: dict[str, Any]) -> bool:
    # component sections and top-level tables are tables; `aggregates = {...}` stays inline
    return any(isinstance(x, dict) for x in v.values()) or "type" in v


def write_config(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(to_toml(doc))
    return path


def rtstream_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "rtstream", *args]


def run_cli(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(rtstream_cmd(*args), capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, **(env or {})})


class Daemon:
    """The real `rtstream run` process, with its output collected to files."""

    def __init__(self, config: Path, workdir: Path, *extra: str, env: dict[str, str] | None = None):
        self.config = config
        self.out_path = workdir / f"daemon-{time.monotonic_ns()}.out"
        self.err_path = self.out_path.with_suffix(".err")
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(rtstream_cmd("run", "-c", str(config), *extra), stdout=self._out,
                                     stderr=self._err, cwd=ROOT, env={**os.environ, **(env or {})})

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._close()

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._close()

    def _close(self) -> None:
        self._out.close()
        self._err.close()

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def window_files(directory: Path) -> dict[str, list[dict[str, Any]]]:
    return {p.name: read_jsonl(p) for p in sorted(directory.glob("*.jsonl"))}


def status(port: int) -> dict[str, Any] | None:
    """The daemon's /api/status on an admin port without a token, or None while it is not up."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2) as resp:
            return orjson.loads(resp.read())  # type: ignore[no-any-return]
    except OSError:
        return None


def kill_after_a_commit(config: Path, workdir: Path, source: str = "tail") -> int:
    """Run the daemon until `source` (a followed file) has committed a position past 0, SIGKILL it,
    and return that position."""
    pos_file = workdir / "state" / "positions" / f"{source}.json"
    with Daemon(config, workdir) as d:
        wait_until(lambda: pos_file.exists() and orjson.loads(pos_file.read_bytes())["position"] > 0, 30,
                   what="a commit")
        d.kill()
    return int(orjson.loads(pos_file.read_bytes())["position"])


@contextlib.contextmanager
def small_tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "1m") mounted at `mount`, for full-disk tests; skips where mounting
    is not allowed."""
    import pytest

    mount.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {res.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def sigkill_at_random_moments(start: Callable[[], Any], rnd: Any, kills: int, low: float, high: float) -> None:
    """Start the daemon (`start()`, a context manager giving a Daemon) and SIGKILL it after a random
    `low`..`high` seconds, `kills` times; a daemon that ends on its own first fails the test."""
    done = 0
    while done < kills:
        with start() as d:
            try:
                d.proc.wait(rnd.uniform(low, high))
            except subprocess.TimeoutExpired:
                d.proc.send_signal(signal.SIGKILL)
                d.proc.wait(10)
                done += 1
                continue
            raise AssertionError(f"the daemon ended on its own: {d.stderr}")


def kill_mid_feed(daemon: Daemon, feed: Callable[[], None], position_file: Path, delay: float) -> None:
    """Feed the daemon from another thread, SIGKILL it `delay` seconds (a seeded random point) after its
    first commit (a position over 0 in `position_file`), and wait for the feed to finish: a kill mid-stream."""
    feeder = threading.Thread(target=feed)
    feeder.start()
    wait_until(lambda: position_file.exists() and orjson.loads(position_file.read_bytes())["position"] > 0, 30,
               what="a commit")
    time.sleep(delay)  # a random point of the stream; not a wait for a condition
    daemon.kill()
    feeder.join(30)
