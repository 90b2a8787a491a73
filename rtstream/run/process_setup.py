"""What every way of running a pipeline does first, in one place: the config's secrets remembered (so no
surface shows them from here on) and logging set up as `[daemon]` says."""

from __future__ import annotations

from rtstream.config.settings import Settings
from rtstream.support.logs import setup_logging
from rtstream.support.secrets import remember


def start_logging(settings: Settings, log_format: str | None = None) -> None:
    """Logging to stderr at `daemon.log_level`, in `log_format` (default `daemon.log_format`), masking
    every secret of `settings`."""
    daemon = settings.root.daemon
    worker = daemon.worker.index if daemon.worker.count > 1 else None  # set by the workers supervisor
    setup_logging(daemon.log_level, log_format or daemon.log_format, settings.root.pipeline.name, remember(settings),
                  worker)
