"""A sink's `asset = "URI"`: once the sink has written a window, the window is an event of that asset.

The flusher calls `announce` after the sink's write returned (inside the sink's failure policy, so a
store that cannot keep the event is retried like the write, and holds the window's commits), and
before the window releases its holds: a SIGKILL after the write and before the event replays the
window (written again, idempotently) and announces it then; one after the event replays it too, and
the event, keyed by (pipeline, sink, window), is not made twice (rtstream.dags.pipeline_assets).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from rtstream.model.window import Window

log = logging.getLogger("rtstream.flush")
_warned: set[str] = set()


def asset_of(sink: Any) -> str | None:
    return getattr(getattr(sink, "config", None), "asset", None)


def window_key(window: Window) -> str | None:
    """A per-key window (a session) is told apart from others of the same bounds by its key."""
    if window.key is None:
        return None
    return hashlib.sha256(repr(window.key).encode()).hexdigest()[:16]


async def announce(sink: Any, window: Window, rows: int) -> None:
    uri = asset_of(sink)
    if uri is None or not window.final:  # a running result (emit = "updates") is not a written window
        return
    dags = getattr(sink.context, "dags", None)
    if dags is None:
        if sink.name not in _warned:  # e.g. `rtstream test` or a backfill: no DAG runs beside this pipeline
            _warned.add(sink.name)
            log.warning("sink %s: asset %s gets no events in this run (no DAGs run beside the pipeline)",
                        sink.name, uri)
        return
    dags.asset_written(uri, sink.context.pipeline, sink.name, (window.start, window.end), window_key(window), rows)
