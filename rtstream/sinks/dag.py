"""`type = "dag"`: each closed window starts one run of a DAG of the same daemon, and the window is
written (its source positions may be committed) only once that run has succeeded.

The run's logical date is the window's start (run_id `window__<start>`), its data interval the
window; `dag_run.conf` holds `rows`, `window_start` and `window_end`, and the rows are also the XCom
`return_value` of a task id named after the pipeline, so a TaskFlow task can take them as an argument
(`rtstream.airflow.pipeline_rows`). A failed run raises: the failure policy holds the commits and
retries, and a retry clears the failed task instances of that same run (never a new run), so a
window's rows reach one successful run. The run is kept by (dag_id, logical date) in the DAG store:
a window replayed after a restart finds its run (running: resumed and awaited; success: done at once).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from rtstream.model.dag_trigger import DagTrigger
from rtstream.model.errors import SinkError
from rtstream.model.registry import register
from rtstream.model.window import Window
from rtstream.sinks.base import Sink, SinkConfig


class DagSinkConfig(SinkConfig):
    dag: str = Field(description="the dag_id of a DAG in [dags] path: one run of it per closed window")


@register("sink", "dag")
class DagSink(Sink):
    Config = DagSinkConfig

    async def start(self) -> None:
        trigger: DagTrigger | None = getattr(self.context, "dags", None)
        if trigger is None:
            raise SinkError(self.name, "a dag sink runs only in the daemon that runs its DAGs "
                                       "(`rtstream run` with [dags] path)")
        if not trigger.has_dag(self.config.dag):
            raise SinkError(self.name, f"DAG {self.config.dag!r} is not scheduled by this daemon "
                                       "(see the DAG lines of the log above)")
        self.trigger = trigger

    async def write(self, window: Window, rows: list[dict[str, Any]]) -> None:
        conf = {"rows": rows, "window_start": window.start_iso, "window_end": window.end_iso}
        state = await self.trigger.run_for_window(self.config.dag, window.start, (window.start, window.end), conf,
                                                  self.context.pipeline, rows)
        if state != "success":
            why = "the daemon stopped before it ended" if state == "running" else state
            raise SinkError(self.name, f"DAG {self.config.dag!r} run of window {window.start_iso}: {why}")

    def describe(self) -> str:
        return f"dag {self.config.dag}"
