"""What every way of running a pipeline does first, in one place: the config's secrets remembered (so no
surface shows them from here on) and logging set up as `[daemon]` says."""

from __future__ import annotations

import sys
from typing import Any

from rtstream.config.settings import Settings
from rtstream.model.errors import EXIT_CONFIG
from rtstream.support.logs import setup_logging
from rtstream.support.secrets import remember


def start_logging(settings: Settings, log_format: str | None = None) -> None:
    """Logging to stderr at `daemon.log_level`, in `log_format` (default `daemon.log_format`), masking
    every secret of `settings`."""
    daemon = settings.root.daemon
    worker = daemon.worker.index if daemon.worker.count > 1 else None  # set by the workers supervisor
    setup_logging(daemon.log_level, log_format or daemon.log_format, settings.root.pipeline.name, remember(settings),
                  worker)


async def admin_started(server: Any, listen: str) -> Any:
    """`server` listening on `listen`, or EXIT_CONFIG after one line saying why it cannot (the address is
    taken, or not this host's)."""
    try:
        await server.start()
    except OSError as exc:
        print(f"rtstream: cannot start: admin.listen: {listen}: {exc.strerror or exc}", file=sys.stderr)
        await server.close()
        return EXIT_CONFIG
    return server
