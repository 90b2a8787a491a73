"""A SIGTERM or SIGINT that arrives while the daemon is still starting, before its loop handles signals.

Python's own default ends the process at once (SIGTERM: exit -15, SIGINT: a KeyboardInterrupt
traceback), so a service manager that stops a daemon during its first second saw a failure. `hold()`
runs first thing in `rtstream run`: it only notes the signal; the daemon (or the workers supervisor)
asks `received()` once its loop's handlers are in place and then stops cleanly, exit 0.
"""

from __future__ import annotations

import signal
from types import FrameType

_received: list[int] = []


def _note(sig: int, frame: FrameType | None) -> None:
    _received.append(sig)


def hold() -> None:
    """Note SIGTERM and SIGINT from now on instead of dying; the event loop's handlers replace this."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            signal.signal(sig, _note)
        except ValueError:  # not the main thread: whoever runs us handles signals
            return


def received() -> int | None:
    """The first signal noted before the loop took over, or None."""
    return _received[0] if _received else None
