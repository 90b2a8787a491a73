"""What a pipeline's `dag` sink needs from the DAG scheduler of its daemon, and nothing more.

The sink (rtstream.sinks.dag) may not import the dags room (the components contract): the daemon
(rtstream.run.dags_daemon) hands it an implementation (rtstream.dags.window_runs) through the
component context. One call per closed window; it returns the run's final state. A sink that declares
`asset = "URI"` (any type) announces each written window through `asset_written`.
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

    def asset_written(self, uri: str, pipeline: str, sink: str, window: tuple[datetime, datetime],
                      window_key: str | None, rows: int) -> bool:
        """Keep the event of asset `uri` for a window `sink` of `pipeline` has written (extra: pipeline,
        window_start, window_end, rows) and queue the DAGs scheduled on it, in one transaction, before
        the window's positions may be committed. Keyed by (pipeline, sink, window): a replayed window's
        second announcement changes nothing. True when the event is new."""
        ...
