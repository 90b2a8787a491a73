"""The admin view of a pipeline run as several workers: each worker's own admin server (on a
loopback port of its own) is read every second, and the answers are combined into the shape the
admin server serves for one process, so the same page, probes and metrics work unchanged.

Metrics are the workers' own families with a `worker` label added; counts are summed, the
watermark is the lowest (each branch's too, as times); a problem of one worker is named with it (`worker-1/results`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from rtstream.model.status import Throughput
from rtstream.runtime.run_history import RunHistory
from rtstream.windows.clock import epoch_ms

if TYPE_CHECKING:
    from pathlib import Path

    from rtstream.config.settings import Settings
    from rtstream.run.worker_process import Worker

POLL_EVERY = 1.0
_SUMMED = ("records_in", "rows_out", "rows_running", "windows_flushed", "dead_letters", "open_windows")


class Supervisor(Protocol):
    """What the view reads of the supervisor (rtstream.run.workers) that owns it."""

    settings: Settings
    state_dir: Path
    workers: list[Worker]
    stopping: asyncio.Event


class WorkersStatus:
    def __init__(self, supervisor: Supervisor, token: str | None):
        self.supervisor = supervisor
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.started = time.time()
        self.statuses: dict[int, dict[str, Any]] = {}
        self.metrics_text: dict[int, str] = {}
        self.metrics_registry = CollectorRegistry(auto_describe=False)
        self.metrics_registry.register(_WorkerMetrics(self))
        self.history = _MergedHistory(self)
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def config_path(self) -> str | None:
        """The supervisor's config file: a re-run is a backfill of it, as for one process."""
        path = self.supervisor.settings.path
        return str(path) if path is not None else None

    @property
    def config_overrides(self) -> list[str]:
        return [*self.supervisor.settings.overrides, "daemon.workers=1"]  # a backfill is one process

    @property
    def pipeline(self) -> str:
        return self.supervisor.settings.root.pipeline.name

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2), headers=self.headers)
        self._task = asyncio.create_task(self._poll_forever(), name="workers-status")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._http is not None:
            await self._http.close()
        self.history.close()

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.gather(*(self._poll(w.index, w.admin_port) for w in self.supervisor.workers
                                   if w.admin_port is not None))
            await asyncio.sleep(POLL_EVERY)

    async def _poll(self, index: int, port: int | None) -> None:
        assert self._http is not None
        base = f"http://127.0.0.1:{port}"
        try:
            async with self._http.get(f"{base}/api/status") as resp:
                self.statuses[index] = orjson.loads(await resp.read())
            async with self._http.get(f"{base}/metrics") as resp:
                self.metrics_text[index] = await resp.text()
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError, ValueError):
            self.statuses.pop(index, None)  # not up (yet, or any more): readiness says so

    # --- the view the admin server reads --------------------------------------------------------
    def throughput(self) -> Throughput:
        sts = list(self.statuses.values())
        marks = [epoch_ms(s["watermark"]) for s in sts if s.get("watermark")]
        return Throughput(sum(s.get("records_in", 0) for s in sts), sum(s.get("rows_out", 0) for s in sts),
                          min(marks) if marks else 0, sum(s.get("rows_running", 0) for s in sts))

    def readiness(self) -> dict[str, str]:
        problems: dict[str, str] = {}
        for w in self.supervisor.workers:
            st = self.statuses.get(w.index)
            if w.done:
                continue
            if st is None:
                problems[f"worker-{w.index}"] = "not answering" if w.proc is not None else "not started"
                continue
            for comp, why in st.get("problems", {}).items():
                problems[f"worker-{w.index}/{comp}"] = why
        if self.supervisor.stopping.is_set():
            problems["daemon"] = "shutting down"
        return problems

    def component_order(self) -> list[str]:
        first = next(iter(self.statuses.values()), None)
        if first is None:
            return []
        flow = first.get("flow", {})
        return [*flow.get("stages", []), *flow.get("sinks", [])]

    def status(self) -> dict[str, Any]:
        sts = self.statuses
        first = next(iter(sts.values()), {})
        problems = self.readiness()
        marks = [s["watermark"] for s in sts.values() if s.get("watermark")]
        least = min(marks, key=_when) if marks else None
        doc: dict[str, Any] = {
            "pipeline": self.pipeline, "ready": not problems, "problems": problems,
            "flow": first.get("flow", {}), "components": first.get("components", {}),
            "uptime_s": time.time() - self.started, "watermark": least,
            "watermarks": _branch_marks(sts.values()),
            "workers": [{"worker": w.index, "pid": w.proc.pid if w.proc else None, "restarts": w.restarts,
                         "finished": w.done, "ready": w.index in sts and not sts[w.index].get("problems"),
                         "records_in": sts.get(w.index, {}).get("records_in")} for w in self.supervisor.workers],
        }
        for key in _SUMMED:
            doc[key] = sum(s.get(key, 0) or 0 for s in sts.values())
        return doc


def _when(iso: str) -> datetime:
    # as times: ISO text with and without milliseconds does not sort as text ("00Z" > "00.500Z")
    return datetime.fromisoformat(iso)


def _branch_marks(statuses: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each branch's watermark over the workers: the least any worker has, as `watermark` is."""
    out: dict[str, dict[str, Any]] = {}
    for st in statuses:
        for w in st.get("watermarks", []):
            have = out.setdefault(w["branch"], {**w, "watermark": None})
            if w["watermark"] and (have["watermark"] is None or _when(w["watermark"]) < _when(have["watermark"])):
                have["watermark"] = w["watermark"]
    return list(out.values())


class _MergedHistory:
    """The workers' run histories as one: a window's row per component, worst state first.

    Read from each worker's runs.db (SQLite in WAL mode takes readers beside its writer), so any
    window any worker keeps can be listed, paged to, opened and re-run, not only the newest.
    """

    _RANK = {"failed": 0, "retrying": 1, "running": 2, "dead_lettered": 3, "success": 4}

    def __init__(self, view: WorkersStatus):
        self.view = view
        self._dbs: dict[int, RunHistory] = {}

    def _histories(self) -> dict[int, RunHistory]:
        sup = self.view.supervisor
        for w in sup.workers:
            path = sup.state_dir / f"worker-{w.index}" / "runs.db"
            if w.index not in self._dbs and path.exists():
                self._dbs[w.index] = RunHistory(path)
        return self._dbs

    def windows(self, limit: int | None = None, before: str | None = None) -> list[dict[str, Any]]:
        found = {i: h.windows(limit, before) for i, h in self._histories().items()}
        out = self._merged(found)
        return out[:limit] if limit else out

    def window(self, start: str) -> dict[str, Any] | None:
        found = {i: [w] for i, h in self._histories().items() if (w := h.window(start)) is not None}
        out = self._merged(found)
        return out[0] if out else None

    def _merged(self, by_worker: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        merged: dict[str, dict[str, Any]] = {}
        for index, windows in by_worker.items():
            for w in windows:
                into = merged.setdefault(w["window_start"], {"window_start": w["window_start"],
                                                             "window_end": w["window_end"], "components": {}})
                for comp, run in w["components"].items():
                    have = into["components"].get(comp)
                    if have is None or self._RANK.get(run["state"], 9) < self._RANK.get(have["state"], 9):
                        into["components"][comp] = {**run, "worker": index}
        return sorted(merged.values(), key=lambda w: w["window_start"], reverse=True)

    def close(self) -> None:
        for h in self._dbs.values():
            h.close()


class _WorkerMetrics(Collector):
    def __init__(self, view: WorkersStatus):
        self.view = view

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for index, text in sorted(self.view.metrics_text.items()):
            for fam in text_string_to_metric_families(text):
                into = families.get(fam.name)
                if into is None:
                    into = families[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                for s in fam.samples:
                    into.add_sample(s.name, {**s.labels, "worker": str(index)}, s.value, s.timestamp, s.exemplar)
        yield from families.values()
