"""Ctrl-C at a terminal on `make run`: the daemon stops cleanly and make exits 0, not 130 (make used to
die of the SIGINT the terminal sends its whole foreground group; rtstream.support.foreground)."""

from __future__ import annotations

import os
import pty
import select
import shutil
import sys
import time

import pytest

from rtstream.support.foreground import main as foreground
from rtstream.testing.peers.ports import free_port
from tests.support import ROOT


def _in_a_terminal(argv: list[str], env: dict[str, str], ready: bytes) -> tuple[int, str]:
    """Run argv on a new pseudo-terminal, type Ctrl-C once `ready` shows; (exit code, output)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: a session of its own with the terminal as its controlling tty, as a shell
        os.chdir(ROOT)
        os.execvpe(argv[0], argv, env)
    out, sent, deadline = b"", False, time.monotonic() + 120
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            out += data
        if not sent and ready in out:
            os.write(fd, b"\x03")
            sent = True
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert sent, out.decode(errors="replace")
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_ctrl_c_on_make_run_exits_0(tmp_path):
    env = {**os.environ, "RTSTREAM_VAR": str(tmp_path), "RTSTREAM_ADMIN": f"127.0.0.1:{free_port()}"}
    # this test's venv, and no install step (-o: the stamp is taken as made)
    venv = sys.prefix
    code, out = _in_a_terminal(["make", "--no-print-directory", f"VENV={venv}", "-o", f"{venv}/.installed", "run"],
                               env, b"pipeline clickstream running")
    assert "SIGINT: stopping sources" in out, out
    assert "Interrupt" not in out, out  # make's "*** [Makefile: run] Interrupt"
    assert code == 0, out


def test_the_wrapper_passes_the_exit_code_on_without_a_terminal():
    assert foreground([sys.executable, "-c", "import sys; sys.exit(3)"]) == 3
    assert foreground([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"]) == 128 + 15
    assert foreground(["/nonexistent/rtstream"]) == 127
