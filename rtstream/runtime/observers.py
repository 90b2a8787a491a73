"""What the runtime tells its observers (metrics): the core calls this interface, observers implement it.

The runtime never imports an observer: the daemon (rtstream.run.daemon) hands them in, so the admin
side can count what happens without the runtime knowing it exists (Faust's sensors, Vector's
internal events).
"""

from __future__ import annotations

from typing import Protocol

from rtstream.model.window import Window


class WindowObserver(Protocol):
    def window_flushed(self, window: Window, seconds: float) -> None:
        """A final window went through every window stage and sink in `seconds`."""
