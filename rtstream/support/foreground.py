"""Run a command as the terminal's foreground process group, so Ctrl-C reaches it and not `make`.

    python -m rtstream.support.foreground COMMAND [ARGS...]

A Ctrl-C sends SIGINT to every process of the terminal's foreground group. Under `make run`, that
group holds make too, and make always dies of the signal ("make: *** Interrupt", exit 130) however
cleanly the daemon stops and whatever it exits with. Here the command gets a process group of its
own, made the terminal's foreground group while it runs: Ctrl-C then stops only the command (the
daemon's clean stop, exit 0), this wrapper passes its exit code on, and make sees a recipe that
succeeded. Without a terminal (CI, a pipe) the command simply runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def _terminal_given_to(pgid: int, fd: int | None) -> Iterator[None]:
    if fd is None:
        yield
        return
    # tcsetpgrp from a group that is not (or no longer) in the foreground raises SIGTTOU: ignore it
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        before = os.tcgetpgrp(fd)
        os.tcsetpgrp(fd, pgid)
    except OSError:
        signal.signal(signal.SIGTTOU, previous)
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(fd, before)
        signal.signal(signal.SIGTTOU, previous)


def _terminal() -> int | None:
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        with contextlib.suppress(ValueError, OSError):
            if stream is not None and stream.isatty():
                return stream.fileno()
    return None


def run_in_foreground(argv: list[str]) -> int:
    """The command's exit code (128 + N when a signal N ended it)."""
    fd = _terminal()
    proc = subprocess.Popen(argv, process_group=0 if fd is not None else None)
    with _terminal_given_to(proc.pid, fd):
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:  # not ours (the command holds the terminal): wait for it still
                continue
    return code if code >= 0 else 128 - code


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m rtstream.support.foreground COMMAND [ARGS...]", file=sys.stderr)
        return 2
    try:
        return run_in_foreground(args)
    except FileNotFoundError as exc:
        print(f"cannot run {args[0]}: {exc.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
