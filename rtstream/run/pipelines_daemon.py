"""`rtstream run` of a config with several pipelines (`[pipelines.NAME]` or `pipelines = "FOLDER"`):
every pipeline in this one process, each with its own state, commit rule, dead letters, run history and
metrics, beside the DAGs of `[dags]`, shown by one admin server.

Isolation: a pipeline whose sink or source fails halts and retries by its own failure policy; one
whose runtime ends on a failure is started again after a backoff (rtstream.run.pipeline_slot); a DAG
run's failure stays in the DAG store. SIGTERM stops every pipeline and the DAG scheduler at once, all
within the one `daemon.shutdown_grace`, each committing what is safe; a second signal exits at once.
Each of a pipeline's log lines starts with `[NAME]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

import orjson

from rtstream.config.pipelines import PipelinesSettings
from rtstream.model.errors import EXIT_CONFIG
from rtstream.run.pipeline_slot import PipelineSlot
from rtstream.run.pipelines_status import PipelinesView
from rtstream.support import early_signals
from rtstream.support.logs import JsonFormatter
from rtstream.support.secrets import remember

if TYPE_CHECKING:
    from rtstream.admin.pipelines_api import PipelinesAdmin
    from rtstream.airflow.dag_model import DAG
    from rtstream.dags.store import RunStore
    from rtstream.run.dag_services import DagServices

log = logging.getLogger("rtstream.pipelines")
_PIPELINE: contextvars.ContextVar[str | None] = contextvars.ContextVar("rtstream_pipeline", default=None)


class _PipelineTag(logging.Filter):
    """Which pipeline logged a line (its tasks inherit the slot's context), for the formatters below. The
    record itself is left as it was: other handlers (a DAG try's kept log lines) see the line unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "pipeline_name", None) is None and (name := _PIPELINE.get()) is not None:
            record.pipeline_name = name
        return True


class _PipelineText(logging.Formatter):
    """`[NAME] ` before the message of a pipeline's text line."""

    def __init__(self, inner: logging.Formatter):
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        name = getattr(record, "pipeline_name", None)
        if name is None or not isinstance(record.msg, str):
            return self.inner.format(record)
        tagged = logging.makeLogRecord(record.__dict__)  # a copy: the record is shared by every handler
        tagged.msg = f"[{name}] {record.msg}"  # a pipeline's name is letters, digits, _ and - only
        return self.inner.format(tagged)


class _PipelineJson(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        name = getattr(record, "pipeline_name", None)
        return line if name is None else orjson.dumps({**orjson.loads(line), "pipeline": name}).decode()


def run_pipelines_daemon(ps: PipelinesSettings) -> int:
    from rtstream.run.daemon import _event_loop_runner
    from rtstream.support.gc_tuning import tune_for_streaming
    from rtstream.support.logs import setup_logging

    secrets = [s for settings in ps.pipelines.values() for s in remember(settings)]
    setup_logging(ps.daemon.log_level, ps.daemon.log_format, "rtstream", secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_PipelineTag())
        if isinstance(handler.formatter, JsonFormatter):
            handler.setFormatter(_PipelineJson("rtstream"))
        elif handler.formatter is not None:
            handler.setFormatter(_PipelineText(handler.formatter))
    found: list[DAG] = []
    not_scheduled: list[dict[str, str]] = []
    watchers: list[Any] = []
    store: RunStore | None = None
    if ps.dags is not None:
        from rtstream.dags.store import RunStore
        from rtstream.run.dags_daemon import _load_dags

        loaded = _load_dags(ps.dags, ps.dag_bag)
        if loaded is None:
            return EXIT_CONFIG
        found, not_scheduled = loaded
        from rtstream.run.watchers import plan

        found, watchers = plan(found, not_scheduled, ps.dags)  # Kafka AssetWatchers: a pipeline each
        try:
            store = RunStore(ps.dags.store_path)
        except OSError as exc:
            print(f"rtstream: cannot start: daemon.state_dir: {exc.filename or ps.dags.store_path}: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            return EXIT_CONFIG
    tune_for_streaming()
    code = _event_loop_runner(ps.daemon.event_loop)(_serve(ps, found, not_scheduled, store, secrets,
                                                                        watchers))
    if store is not None:
        store.close()
    from rtstream.run.dag_services import exit_past_running_tries

    return exit_past_running_tries(code)


async def _serve(ps: PipelinesSettings, found: list[DAG], not_scheduled: list[dict[str, str]],
                 store: RunStore | None, secrets: list[str], watchers: list[Any]) -> int:
    services = None
    capture: Any = contextlib.nullcontext
    if store is not None:
        from rtstream.dags.tries import capture
        from rtstream.run.dag_services import dag_services

        services = dag_services(found, not_scheduled, store, ps.daemon.shutdown_grace, watchers)
    trigger = services.runs if services is not None else None  # what every pipeline's `dag` sinks call
    slots = {name: PipelineSlot(name, settings, trigger) for name, settings in ps.pipelines.items()}
    with capture():  # each DAG try's log lines and prints, kept with the try
        return await _serve_with(ps, slots, services, secrets)


async def _serve_with(ps: PipelinesSettings, slots: dict[str, PipelineSlot], services: DagServices | None,
                      secrets: list[str]) -> int:
    scheduler = services.scheduler if services is not None else None
    grid = services.grid if services is not None else None
    if services is not None:
        services.watching.start()
    admin = await _admin(ps, PipelinesView(slots), grid, secrets) if ps.admin is not None else None
    if isinstance(admin, int):
        return admin
    stopped = asyncio.Event()
    signals = 0

    def on_signal(sig: int) -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            log.warning("second %s: exiting at once", signal.Signals(sig).name)
            os._exit(130)
        log.info("%s: stopping %d pipeline%s%s, finishing in-flight windows (grace %.0fs)", signal.Signals(sig).name,
                 len(slots), "" if len(slots) == 1 else "s", " and the DAGs" if scheduler else "",
                 ps.daemon.shutdown_grace)
        for slot in slots.values():
            slot.stop()
        stopped.set()  # the DAG scheduler stops once the pipelines' in-flight windows are written (below)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    loop.add_signal_handler(signal.SIGHUP, lambda: log.error(
        "reload refused: a config of several pipelines is applied by a restart; running on as before"))
    if (early := early_signals.received()) is not None:
        on_signal(early)  # asked to stop while starting (before these handlers): a clean stop, exit 0
    log.info("running %d pipelines: %s", len(slots), ", ".join(slots))
    tasks = [asyncio.create_task(_tagged(slot), name=f"pipeline-{name}") for name, slot in slots.items()]
    if services is not None:
        scheduler = services.scheduler
        sched_task = asyncio.create_task(scheduler.run())
        await stopped.wait()  # the DAGs run until SIGTERM, whatever the pipelines do
        # a `dag` sink's window is written when its DAG run succeeded: the scheduler keeps running those
        # runs while the pipelines finish their in-flight windows, then stops in what is left of the grace
        deadline = loop.time() + ps.daemon.shutdown_grace
        await asyncio.wait(tasks, timeout=ps.daemon.shutdown_grace)
        scheduler.grace = max(0.5, deadline - loop.time())
        services.watching.stop()
        scheduler.stop()
        await asyncio.gather(sched_task, services.watching.wait())
    codes = await asyncio.gather(*tasks)  # without DAGs: until every pipeline has stopped or finished
    if admin is not None:
        await admin.close()
    for slot in slots.values():
        slot.close()
    log.info("stopped")
    return 0 if all(c == 0 for c in codes) else 1


async def _tagged(slot: PipelineSlot) -> int:
    _PIPELINE.set(slot.name)  # this task's context: the runtime's tasks inherit it
    return await slot.run()


async def _admin(ps: PipelinesSettings, view: PipelinesView, grid: Any, secrets: list[str]) -> PipelinesAdmin | int:
    from rtstream.admin.pipelines_api import PipelinesAdmin

    admin = ps.admin
    assert admin is not None
    token = admin.token.get_secret_value() if admin.token else None
    server = PipelinesAdmin(view, admin.listen, token, admin, grid, [*secrets, *([token] if token else [])])
    from rtstream.run.process_setup import admin_started

    return await admin_started(server, admin.listen)
