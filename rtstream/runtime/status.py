"""What operators see of a running pipeline: the read-only view the admin server and the metrics read.

It provides rtstream.model.status's protocols; the admin side knows those, never this module or the
runtime, so the two never import each other.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rtstream.model.status import Throughput
from rtstream.model.window import iso_utc
from rtstream.runtime.open_windows import branch_watermarks, open_windows

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from rtstream.runtime.run_history import RunHistory
    from rtstream.runtime.supervisor import Runtime


class RuntimeStatus:
    def __init__(self, runtime: Runtime, metrics_registry: CollectorRegistry | None = None):
        self._rt = runtime
        self._registry = metrics_registry  # the daemon's metrics (rtstream.run.daemon); None without
        # windows written before this process started, from the history: the header counts across restarts
        self._flushed_before = max(0, runtime.history.flushed_total() - runtime.flusher.windows_flushed)

    @property
    def pipeline(self) -> str:
        return self._rt.settings.root.pipeline.name

    @property
    def history(self) -> RunHistory:
        return self._rt.history

    @property
    def metrics_registry(self) -> CollectorRegistry | None:
        return self._registry

    def throughput(self) -> Throughput:
        rt = self._rt
        return Throughput(sum(rt.stats.records_in.values()), rt.flusher.rows_out, rt.engine.watermark.current,
                          rt.flusher.rows_running)

    def readiness(self) -> dict[str, str]:
        """Component -> why it is not ready; empty when every source takes input and no sink is halted."""
        rt = self._rt
        problems = {}
        for src in rt.sources:
            why = src.not_ready()
            if why:
                problems[src.name] = why
        for comp, error in rt.flusher.failing.items():
            problems[comp] = f"halted, retrying: {error}"
        if rt.stopping:
            problems["daemon"] = "shutting down"
        return problems

    def component_order(self) -> list[str]:
        rt = self._rt
        return [*([rt.incremental.name] if rt.incremental else []), *(s.name for s in rt.window_stages),
                *(s.name for s in rt.sinks)]

    def status(self) -> dict[str, Any]:
        rt = self._rt
        flow = rt.settings.flow
        comps: dict[str, Any] = {}
        for kind, objs in (("source", rt.sources), ("stage", rt.stages), ("sink", rt.sinks)):
            for obj in objs:
                comps[obj.name] = {"kind": kind, "describe": obj.describe(), "halted": obj.name in rt.flusher.failing}
        wm = rt.engine.watermark.current
        problems = self.readiness()
        return {"pipeline": self.pipeline, "ready": not problems, "problems": problems,
                "flow": {"sources": flow.sources, "stages": flow.stages, "sinks": flow.sinks,
                         # the graph: its edges and the drawing `rtstream validate` prints
                         "edges": [list(e) for e in flow.graph.edges] if flow.graph else [],
                         "drawing": flow.graph.draw() if flow.graph else None},
                "components": comps, "uptime_s": time.time() - rt.started,
                "records_in": sum(rt.stats.records_in.values()), "rows_out": rt.flusher.rows_out,
                "rows_running": rt.flusher.rows_running,
                "windows_flushed": self._flushed_before + rt.flusher.windows_flushed, "dead_letters": rt.dead_letters.count,
                "open_windows": rt.engine.open_windows(),
                "watermark": iso_utc(wm) if wm > 0 else None,
                "watermarks": branch_watermarks(rt.engine, flow)}  # per branch; `watermark` is their least

    def open_window_runs(self) -> list[dict[str, Any]]:
        """The windows still open, every branch's (rtstream.runtime.open_windows)."""
        return open_windows(self._rt.engine, self._rt.settings.flow)

    @property
    def config_path(self) -> str | None:
        """The config file this runtime was started from (None from the Python API)."""
        path = self._rt.settings.path
        return str(path) if path is not None else None

    @property
    def config_overrides(self) -> list[str]:
        return list(self._rt.settings.overrides)

    @property
    def dead_letter_path(self) -> str:
        return str(self._rt.dead_letters.path)

    # --- for the metrics collector ------------------------------------------------------------
    def counters(self) -> dict[str, Any]:
        """Plain numbers and maps, read at scrape time."""
        rt = self._rt
        cp = rt.checkpoints
        return {
            "records_in": dict(rt.stats.records_in),
            "rows_by_sink": dict(rt.flusher.rows_by_sink),
            "dead_letters_by_reason": dict(rt.dead_letters.by_reason),
            "windows_flushed": rt.flusher.windows_flushed,
            "retries_by": dict(rt.flusher.retries_by),
            "failures": dict(rt.flusher.failures),
            "queue_depth": {name: q.qsize() for name, q in rt.queues.items()},
            "open_windows": rt.engine.open_windows(),
            "watermark_ms": rt.engine.watermark.current,
            "checkpoints": None if cp is None else {"saved": cp.saved, "bytes": cp.last_bytes, "at": cp.last_at},
            "halted": {sink.name: sink.name in rt.flusher.failing for sink in rt.sinks},
            "lookups": {s.name: figures for s in rt.stages if (figures := s.lookup_figures()) is not None},
            "state": {s.name: kept for s in rt.stages if (kept := s.state_figures()) is not None},
        }

    def source_gauges(self) -> Iterator[tuple[str, dict[tuple[str, int], int], int | None]]:
        """(source, its consumer lag per (topic, partition), its spooled bytes or None) for each source."""
        for src in self._rt.sources:
            yield src.name, src.lag(), src.pending_bytes()
