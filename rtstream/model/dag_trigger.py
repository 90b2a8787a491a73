"""What a pipeline's `dag` sink needs from the DAG scheduler of its daemon, and nothing more.

The sink (rtstream.sinks.dag) may not import the dags room (the components contract): the daemon
(rtstream.run.dags_daemon) hands it an implementation (rtstream.dags.window_runs) through the
component context. One call per closed window; it returns the run's final state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class DagTrigger(Protocol):
    def has_dag(self, dag_id: str) -> bool:
        """Whether this daemon schedules that DAG."""
        ...

    async def run_for_window(self, dag_id: str, logical_date: datetime, interval: tuple[datetime, datetime],
                             conf: dict[str, Any], upstream: str, rows: list[dict[str, Any]]) -> str:
        """Run (or resume, or clear and run again) the one run of `dag_id` at `logical_date` and return
        its state once it is no longer running: `success`, `failed`, or `running` when the daemon stops
        before it ends. The run is kept by (dag_id, logical_date): a second call for the same window
        finds it, and a successful one returns at once. `rows` are the XCom `return_value` of the task
        id `upstream` (the pipeline), visible to the run's tasks."""
        ...
