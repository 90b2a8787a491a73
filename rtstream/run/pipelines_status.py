"""What the admin server reads of a daemon's several pipelines: each one's status view, and their sum.

It is the StatusView of them all (readiness of every pipeline, throughput summed, the metrics of each
under a `pipeline` label) and, for `?pipeline=NAME`, the view of that one (rtstream.admin.pipelines_api).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from rtstream.admin.pipeline_metrics import PipelinesCollector
from rtstream.model.status import StatusView, Throughput
from rtstream.run.pipeline_slot import PipelineSlot


class _NoHistory:
    def windows(self, limit: int | None = None, before: str | None = None) -> list[dict[str, Any]]:
        return []  # read per pipeline: /api/runs?pipeline=NAME

    def window(self, start: str) -> dict[str, Any] | None:
        return None


class PipelinesView:
    def __init__(self, slots: dict[str, PipelineSlot]):
        self.slots = slots
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(PipelinesCollector(lambda: [(n, s.metrics.registry) for n, s in self.slots.items()]))
        self.history = _NoHistory()

    @property
    def pipeline(self) -> str:
        return ", ".join(self.slots)

    @property
    def metrics_registry(self) -> CollectorRegistry:
        return self.registry

    def names(self) -> list[str]:
        return list(self.slots)

    def view_of(self, name: str) -> StatusView | None:
        slot = self.slots.get(name)
        return slot.view if slot is not None else None

    def rows(self) -> list[dict[str, Any]]:
        return [slot.row() for slot in self.slots.values()]

    def throughput(self) -> Throughput:
        seen = [s.view.throughput() for s in self.slots.values() if s.view is not None]
        return Throughput(sum(t.records_in for t in seen), sum(t.rows_out for t in seen),
                          min((t.watermark_ms for t in seen if t.watermark_ms > 0), default=0),
                          sum(t.rows_running for t in seen))

    def readiness(self) -> dict[str, str]:
        """`NAME.component` -> why it is not ready, for every pipeline; a finished pipeline is not a problem."""
        out: dict[str, str] = {}
        for name, slot in self.slots.items():
            if slot.state == "restarting":
                out[name] = f"restarting: {slot.last_error}"
            elif slot.view is not None and slot.state not in ("finished", "stopped"):
                out.update({f"{name}.{comp}": why for comp, why in slot.view.readiness().items()})
            elif slot.view is None:
                out[name] = "starting"
        return out

    def component_order(self) -> list[str]:
        return []

    def status(self) -> dict[str, Any]:
        problems = self.readiness()
        return {"pipeline": None, "ready": not problems, "problems": problems, "pipelines": self.rows()}
