"""The daemon: a runtime wired to what watches it (metrics, the admin server), run until SIGTERM.

The runtime knows none of these: it calls the observers it is handed (rtstream.runtime.observers)
and starts the services it is given; the admin side reads a status view (rtstream.model.status).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from rtstream.admin.metrics import Metrics
from rtstream.admin.server import AdminServer
from rtstream.admin.window_links import linked
from rtstream.config.settings import Settings
from rtstream.model.dag_status import DagsView
from rtstream.model.errors import EXIT_CONFIG, StateDirError
from rtstream.runtime.status import RuntimeStatus
from rtstream.runtime.supervisor import Runtime


def daemon_runtime(settings: Settings, dags: DagsView | None = None) -> Runtime:
    """A runtime with its metrics and, when the config has `[admin]`, its admin server (showing the
    DAGs' grid too when the daemon runs DAGs beside the pipeline)."""
    metrics = Metrics()
    runtime = Runtime(settings, observers=[metrics])
    view = RuntimeStatus(runtime, metrics.registry)
    metrics.attach(view)
    admin = settings.root.admin
    if admin is not None:
        token = admin.token.get_secret_value() if admin.token else None
        # with DAGs, each window of /api/runs carries the DAG runs its `dag` sinks started
        runtime.services.append(AdminServer(linked(view, dags), admin.listen, token, settings, dags=dags))
    if settings.root.daemon.worker.count == 1:  # workers: their supervisor says it once
        from rtstream.run.pipeline_text import first_window_note

        runtime.when_running.append(lambda: _note(first_window_note(settings, runtime.sources)))
    return runtime


def _note(text: str | None) -> None:
    if text is not None:
        logging.getLogger("rtstream").info(text)


def run_daemon(settings: Settings) -> int:
    """`rtstream run`: logging set up, one runtime or a supervisor of `workers`; returns the exit code."""
    from rtstream.run.process_setup import start_logging
    from rtstream.support.gc_tuning import tune_for_streaming

    root = settings.root
    start_logging(settings)
    runner = _event_loop_runner(root.daemon.event_loop)
    tune_for_streaming()
    if root.daemon.workers > 1:
        from rtstream.run.workers import WorkerSupervisor

        return runner(WorkerSupervisor(settings).run())
    try:
        runtime = daemon_runtime(settings)
    except OSError as exc:  # the state_dir checked at load went away or filled up since
        print(f"rtstream: cannot start: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StateDirError as exc:  # no room in the state_dir for what a start writes: as a full disk mid-run
        print(f"rtstream: cannot start: {exc}", file=sys.stderr)
        return 1
    return runner(runtime.run())


def _event_loop_runner(choice: str = "auto") -> Callable[[Coroutine[Any, Any, int]], int]:
    if choice == "asyncio":
        return asyncio.run
    try:
        import uvloop  # optional: pip install 'rtstream[fast]'

        return uvloop.run  # type: ignore[no-any-return]
    except ImportError:
        return asyncio.run
