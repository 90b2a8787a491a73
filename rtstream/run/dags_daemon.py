"""`rtstream run --dags PATH` (or a config with `[dags]`): every DAG of PATH on its schedule, beside the
config's pipeline when it has one, until SIGTERM.

A DAG file that cannot be loaded, or a DAG with a task rtstream does not run, is one log line; the
other DAGs run on. SIGTERM stops the pipeline as `rtstream run` does and the DAG scheduler within
`daemon.shutdown_grace`; a second signal exits at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rtstream.config.dags import DagsSettings
from rtstream.config.settings import Settings
from rtstream.model.errors import EXIT_CONFIG
from rtstream.support import early_signals

if TYPE_CHECKING:
    from rtstream.admin.server import AdminServer
    from rtstream.airflow.dag_model import DAG
    from rtstream.dags.store import RunStore
    from rtstream.dags.window_links import LinkedGrid
    from rtstream.run.dag_services import DagServices
    from rtstream.run.watchers import WatcherPipeline

log = logging.getLogger("rtstream.dags")


def _load_dags(dags: DagsSettings, bag: Any = None) -> tuple[list[DAG], list[dict[str, str]]] | None:
    """(the DAGs to schedule, what is not scheduled and why), or None when the path cannot be read.
    `bag`: the DagBag the config's `dag` sinks were checked against (not imported again)."""
    from rtstream.airflow.dagbag import load
    from rtstream.airflow.states import DagRefused

    try:
        bag = bag if bag is not None else load(dags.path)
    except DagRefused as exc:
        print(f"rtstream: cannot start: dags.path: {exc}", file=sys.stderr)
        return None
    not_scheduled = []
    for file, line in bag.import_errors.items():
        log.error("DAG file not loaded: %s", line)
        not_scheduled.append({"file": file, "reason": line})
    runnable = []
    for dag in bag.dags.values():
        refused = bag.refused_tasks(dag)
        if getattr(dag, "parent_dag", None) is not None:  # Airflow's scheduler never schedules a sub-DAG
            not_scheduled.append({"dag_id": dag.dag_id, "reason": "a sub-DAG of a SubDagOperator: not scheduled"})
        elif refused:
            log.error("DAG %s not scheduled: %s", dag.dag_id, "; ".join(refused))
            not_scheduled.append({"dag_id": dag.dag_id, "reason": "; ".join(refused)})
        else:
            runnable.append(dag)
    log.info("DAGs scheduled from %s: %s", dags.path, ", ".join(d.dag_id for d in runnable) or "none")
    return runnable, not_scheduled


def run_dags_daemon(dags: DagsSettings, settings: Settings | None) -> int:
    from rtstream.support.logs import setup_logging

    if settings is not None:
        from rtstream.run.process_setup import start_logging

        start_logging(settings)
    else:
        setup_logging(dags.daemon.log_level, dags.daemon.log_format, "rtstream")
    loaded = _load_dags(dags, settings.dag_bag if settings is not None else None)
    if loaded is None:
        return EXIT_CONFIG
    found, not_scheduled = loaded
    from rtstream.run.watchers import plan

    found, watchers = plan(found, not_scheduled, dags)  # Kafka AssetWatchers: a pipeline each
    if not found and settings is None:
        print(f"rtstream: cannot start: dags.path: no DAG of {dags.path} can be scheduled (see the lines above)",
              file=sys.stderr)
        return EXIT_CONFIG
    from rtstream.dags.store import RunStore

    try:
        store = RunStore(dags.store_path)
    except OSError as exc:
        print(f"rtstream: cannot start: daemon.state_dir: {exc.filename or dags.store_path}: {exc.strerror or exc}",
              file=sys.stderr)
        return EXIT_CONFIG
    code = asyncio.run(_serve(found, not_scheduled, store, dags, settings, watchers))
    store.close()
    from rtstream.run.dag_services import exit_past_running_tries

    return exit_past_running_tries(code)


async def _serve(found: list[DAG], not_scheduled: list[dict[str, str]], store: RunStore, dags: DagsSettings,
                 settings: Settings | None, watchers: list[WatcherPipeline]) -> int:
    from rtstream.dags.tries import capture
    from rtstream.run.dag_services import dag_services

    services = dag_services(found, not_scheduled, store, dags.daemon.shutdown_grace, watchers)
    alerts = None
    if dags.alert is not None:  # the config's [alert]: told of each failed DAG run
        from rtstream.run.dag_alerts import DagRunAlerts

        alerts = DagRunAlerts(dags.alert)
        await alerts.start(services.scheduler)
    try:
        with capture():  # each try's log lines and prints, kept with the try
            return await _serve_with(services, dags, settings)
    finally:
        if alerts is not None:
            await alerts.close()


async def _serve_with(services: DagServices, dags: DagsSettings, settings: Settings | None) -> int:
    scheduler, grid, trigger, watching = services.scheduler, services.grid, services.runs, services.watching
    watching.start()
    loop = asyncio.get_running_loop()
    runtime_task: asyncio.Task[int] | None = None
    on_runtime_signal: Callable[[int], None] | None = None
    if settings is not None:
        from rtstream.run.daemon import daemon_runtime

        runtime = daemon_runtime(settings, dags=grid)
        runtime.context.dags = trigger
        runtime_task = asyncio.create_task(runtime.run())
        on_runtime_signal = runtime.on_signal
    await asyncio.sleep(0)  # the runtimes install their signal handlers first thing; ours wrap them
    signals = 0
    stop_at = [0.0]  # when the grace of a SIGTERM ends (the pipeline's and the DAGs' alike)

    def on_signal(sig: int) -> None:
        nonlocal signals
        signals += 1
        if on_runtime_signal is not None:
            # the scheduler stops once the pipeline has written its windows in flight (below): a `dag`
            # sink's window is written when its run succeeded, so those runs must still start and run
            on_runtime_signal(sig)
            stop_at[0] = loop.time() + dags.daemon.shutdown_grace
            return
        if signals > 1:
            log.warning("second %s: exiting at once", signal.Signals(sig).name)
            os._exit(130)
        else:
            log.info("%s: no new DAG run or task starts; running tries get %.0fs to finish",
                     signal.Signals(sig).name, dags.daemon.shutdown_grace)
        watching.stop()
        scheduler.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    if runtime_task is None and (early := early_signals.received()) is not None:
        on_signal(early)  # asked to stop while starting (before these handlers): a clean stop, exit 0
    admin = await _admin_alone(grid, dags) if settings is None and dags.admin is not None else None
    if isinstance(admin, int):
        return EXIT_CONFIG
    sched_task = asyncio.create_task(scheduler.run())
    if runtime_task is None:
        await sched_task
        watching.stop()
        await watching.wait()
        if admin is not None:
            await admin.close()
        log.info("stopped")
        return 0
    code = await runtime_task  # the pipeline ends on SIGTERM or on its own failure; the DAGs stop with it
    if stop_at[0]:
        scheduler.grace = max(0.5, stop_at[0] - loop.time())  # what is left of the one grace
    watching.stop()
    scheduler.stop()
    await asyncio.gather(sched_task, watching.wait())
    return int(code)


async def _admin_alone(grid: LinkedGrid, dags: DagsSettings) -> AdminServer | int:
    """The admin server of a daemon that runs only DAGs: the page with their grid, /api/dags, /metrics."""
    from rtstream.admin.server import AdminServer
    from rtstream.support.secrets import KNOWN

    admin = dags.admin
    assert admin is not None
    token = admin.token.get_secret_value() if admin.token else None
    KNOWN.add([token] if token else [])  # never in a log line or a task's kept lines either
    server = AdminServer(None, admin.listen, token, None, limits=admin, dags=grid)
    from rtstream.run.process_setup import admin_started

    return await admin_started(server, admin.listen)
