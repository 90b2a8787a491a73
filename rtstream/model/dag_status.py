"""What the admin side reads of the DAGs a daemon runs, and the one thing it may ask of them (clear).

rtstream.dags implements it over its run store and scheduler; the admin server's DAG routes, the
grid of the status page and the DAG metrics depend on this protocol only, as the pipeline's side
depends on rtstream.model.status. Every document is JSON-shaped (the server redacts and sends it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class ClearRefused(Exception):
    """A clear that cannot be done: `status` is the HTTP status to answer, the message its one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class DagCounts:
    """The DAG metrics at scrape time: runs by (dag_id, state); finished tries' durations by
    (dag_id, task_id) as cumulative histogram buckets (upper bound -> count) with their count and sum."""

    runs: dict[tuple[str, str], int] = field(default_factory=dict)
    task_instances: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (dag, task, state)
    durations: dict[tuple[str, str], tuple[list[tuple[float, int]], int, float]] = field(default_factory=dict)


class DagsView(Protocol):
    def dags(self) -> list[dict[str, Any]]:
        """Every DAG the daemon schedules: dag_id, schedule, time zone, next run, tasks (upstream
        first), its latest run, and those not scheduled with the reason."""
        ...

    def runs(self, dag_id: str, limit: int, before: str | None) -> dict[str, Any] | None:
        """The newest `limit` runs (logical date before `before` when given), newest first, each with
        its task instances' states and tries; None for a DAG the daemon does not run."""
        ...

    def run(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        """One run: every task instance with its state, tries (start, end, state, log lines) and XComs."""
        ...

    def clear(self, dag_id: str, run_id: str, task_id: str | None, downstream: bool,
              recursive: bool = False) -> dict[str, Any]:
        """Clear a task instance (and its downstream) or, without task_id, the whole run, so the
        scheduler runs it again; returns what was cleared. `recursive`: ExternalTaskMarkers clear their
        tasks in other DAGs too, as Airflow's recursive clear. Raises ClearRefused."""
        ...

    def counts(self) -> DagCounts: ...

    def knows(self, dag_id: str) -> bool:
        """Whether the daemon runs that DAG (a trigger for another is a 404)."""
        ...

    def trigger(self, dag_id: str, conf: dict[str, Any], logical_date: datetime | None, run_id: str | None,
                interval: tuple[datetime, datetime] | None) -> dict[str, Any]:
        """Create a triggered (manual) run, queued, as Airflow's REST API does; returns the run as that
        API shows it. Raises ClearRefused (its status: 404, 409, 400, 503)."""
        ...
