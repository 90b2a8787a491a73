"""What the admin side reads of a running pipeline: a status view, never the runtime itself.

A single runtime (rtstream.runtime.status) and a supervisor of workers (rtstream.run.workers_status)
both provide it; the admin server and the metrics collector depend on these protocols only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Throughput:
    records_in: int
    rows_out: int
    watermark_ms: int  # 0 before any record
    rows_running: int = 0  # rows of running results (not final), apart from rows_out


class WindowRuns(Protocol):
    def windows(self, limit: int | None = None, before: str | None = None) -> list[dict[str, Any]]:
        """The newest windows' runs (older than `before`, when given), newest first, each with its
        components' states."""
        ...

    def window(self, start: str) -> dict[str, Any] | None:
        """The runs of the window starting at `start`, or None."""
        ...


class StatusView(Protocol):
    """The admin server's view. Optional parts a combined view of workers lacks (the open windows,
    the dead-letter file, the config file) are read with getattr: `open_window_runs()`,
    `dead_letter_path`, `config_path`, `config_overrides`."""

    @property
    def pipeline(self) -> str: ...
    @property
    def history(self) -> WindowRuns: ...
    @property
    def metrics_registry(self) -> Any: ...
    def throughput(self) -> Throughput: ...
    def readiness(self) -> dict[str, str]: ...
    def component_order(self) -> list[str]: ...
    def status(self) -> dict[str, Any]: ...


class CounterView(Protocol):
    """What the Prometheus collector reads at scrape time."""

    def counters(self) -> dict[str, Any]: ...
    def source_gauges(self) -> Iterator[tuple[str, dict[tuple[str, int], int], int | None]]: ...
