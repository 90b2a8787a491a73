"""`[daemon] workers = N`: N worker processes of one pipeline, under one supervisor.

Each worker is the ordinary daemon (`rtstream run`) with its own state under
`STATE_DIR/worker-I`, joining the group of every Kafka source, so the group spreads the partitions
over the workers as it would over replicas on other machines: rtstream invents no cluster protocol
of its own. A Kafka source with `assignment = "static"` joins no group: each worker is told its
index and the count (`daemon.worker`) and reads its fixed share (rtstream.sources.kafka.static).
The supervisor restarts a worker that crashes (with backoff, naming it in the log), passes SIGTERM
on to every worker and exits once all have, and serves one admin server that combines the workers'
status and metrics (rtstream.run.workers_status).

Only pipelines whose every source can be split by a consumer group can have workers: a file, an
HTTP ingest port, a poll or a generator would be read N times. Those are refused with the reason, as
is a join with a side read in group mode (rtstream.run.join_inputs). The topics of a join's static
sides are read co-partitioned: the supervisor tells each worker which (`daemon.worker.co_partitioned`).
A worker whose start is refused for a reason no restart fixes (such topics partitioned unlike) exits
EXIT_START_REFUSED; the supervisor then stops every worker and exits 1 instead of restarting it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtstream.model.errors import EXIT_START_REFUSED
from rtstream.run.join_inputs import co_partitioned_topics, group_mode_problem
from rtstream.run.worker_process import Worker
from rtstream.support import early_signals

if TYPE_CHECKING:
    from rtstream.config.settings import Settings

log = logging.getLogger("rtstream.run.workers")
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)  # backoff between restarts of a worker that keeps crashing
STABLE_AFTER = 60.0  # a worker up this long has its backoff reset


def split_problem(settings: Settings) -> str | None:
    """Why this pipeline cannot run as several workers, or None when it can."""
    if settings.root.daemon.workers <= 1:
        return None
    from rtstream.sources.base import Source

    sources: list[tuple[str, type[Source]]] = [(c.name, c.cls) for c in settings.of(settings.flow.sources)]
    single = [f"{name} ({cls.type_name})" for name, cls in sources if not cls.splits_by_group]
    if single:
        return (f"daemon.workers = {settings.root.daemon.workers} needs sources that a consumer group or the "
                f"supervisor splits (kafka); these would be read once per worker: {', '.join(single)}")
    if (why := group_mode_problem(settings)) is not None:
        return why
    from rtstream.run.keyless_sinks import keyless_problem

    return keyless_problem(settings)  # a table sink replacing whole windows would lose the other workers' rows


class WorkerSupervisor:
    def __init__(self, settings: Settings):
        self.settings = settings
        root = settings.root
        self.count = root.daemon.workers
        self.state_dir = Path(root.daemon.state_dir)
        self.stopping = asyncio.Event()
        self.co_partitioned = co_partitioned_topics(settings)  # decided once here, told to every worker
        self.refused: int | None = None  # the worker whose start was refused for good, if one was
        admin = root.admin
        self.workers = [Worker(i, _free_port() if admin is not None else None) for i in range(self.count)]

    def command(self, w: Worker) -> list[str]:
        assert self.settings.path is not None
        groups = json.dumps(self.co_partitioned)  # Kafka topic names are plain ASCII: TOML reads the JSON as is
        sets = [*self.settings.overrides, f"daemon.state_dir={self.state_dir / f'worker-{w.index}'}", "daemon.workers=1",
                f"daemon.worker={{index = {w.index}, count = {self.count}, co_partitioned = {groups}}}"]
        dl = self.settings.root.dead_letter.path
        if dl:
            sets.append(f"dead_letter.path={Path(dl).with_suffix('')}-worker-{w.index}{Path(dl).suffix}")
        if w.admin_port is not None:
            sets.append(f"admin.listen=127.0.0.1:{w.admin_port}")
        return [sys.executable, "-m", "rtstream", "run", "-c", str(self.settings.path),
                *(arg for s in sets for arg in ("--set", s))]

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        if early_signals.received() is not None:  # asked to stop before the loop listened: start nothing
            self.stop()
        try:
            admin = await self._start_admin()
        except OSError as exc:  # the admin address is taken: one line, nothing started, nothing left open
            log.error("component admin failed to start: %s", exc, extra={"component": "admin"})
            return 1
        from rtstream.run.pipeline_text import first_window_note, source_parts

        if (note := first_window_note(self.settings, source_parts(self.settings))) is not None:
            logging.getLogger("rtstream").info(note)
        try:
            await asyncio.gather(*(self._keep_running(w) for w in self.workers))
        finally:
            if admin is not None:
                await admin.close()
        failed = [w.index for w in self.workers if not self._clean_exit(w)]
        log.info("all %d workers exited%s", self.count, f"; workers {failed} failed" if failed else "")
        return 1 if failed or self.refused is not None else 0

    def _clean_exit(self, w: Worker) -> bool:
        # A worker stopped during its own start-up may die of the SIGTERM we sent before its Python
        # could note it: that is the stop asked for, not a failure.
        if w.exit_code in (0, None):
            return True
        return self.stopping.is_set() and w.exit_code == -signal.SIGTERM

    def stop(self) -> None:
        if self.stopping.is_set():
            return
        log.info("stopping: SIGTERM to every worker")
        self.stopping.set()
        for w in self.workers:
            if w.proc is not None and w.proc.returncode is None:
                w.proc.send_signal(signal.SIGTERM)

    async def _keep_running(self, w: Worker) -> None:
        delays = iter(RESTART_DELAYS)
        while not self.stopping.is_set():
            if w.admin_port is not None and w.restarts:  # its port may be why it crashed: another one
                w.admin_port = _free_port()
            w.started = time.monotonic()
            w.proc = await asyncio.create_subprocess_exec(*self.command(w), env=os.environ.copy(),
                                                          preexec_fn=_die_with_parent)
            log.info("worker %d started (pid %d)", w.index, w.proc.pid, extra={"component": f"worker-{w.index}"})
            if self.stopping.is_set() and w.proc.returncode is None:  # stop() ran while it was being spawned
                w.proc.send_signal(signal.SIGTERM)
            w.exit_code = await w.proc.wait()
            if self.stopping.is_set():
                return
            if w.exit_code == EXIT_START_REFUSED:
                self.refused = w.index
                log.error("worker %d refused to start (its error above) for a reason a restart cannot fix; stopping "
                          "every worker", w.index, extra={"component": f"worker-{w.index}"})
                self.stop()
                return
            if w.exit_code == 0:
                w.done = True  # a finite run that reached its end
                log.info("worker %d finished", w.index, extra={"component": f"worker-{w.index}"})
                return
            if time.monotonic() - w.started >= STABLE_AFTER:
                delays = iter(RESTART_DELAYS)
            delay = next(delays, RESTART_DELAYS[-1])
            w.restarts += 1
            log.error("worker %d exited with %d; restarting it in %.0fs (restart %d)", w.index, w.exit_code, delay,
                      w.restarts, extra={"component": f"worker-{w.index}"})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

    async def _start_admin(self) -> Any:
        root = self.settings.root
        if root.admin is None:
            return None
        from rtstream.admin.server import AdminServer
        from rtstream.run.workers_status import WorkersStatus

        token = root.admin.token.get_secret_value() if root.admin.token else None
        view = WorkersStatus(self, token)
        server = AdminServer(view, root.admin.listen, token, self.settings)  # type: ignore[arg-type]
        await view.start()
        try:
            await server.start()
        except BaseException:
            await server.close()
            await view.close()
            raise
        return _Closing(server, view)


class _Closing:
    def __init__(self, *parts: Any):
        self.parts = parts

    async def close(self) -> None:
        for part in reversed(self.parts):
            await part.close()


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it when the supervisor dies, even by SIGKILL, so no worker
    is left consuming on its own (Linux; elsewhere a supervisor killed hard leaves its workers)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
