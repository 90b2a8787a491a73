"""The grid's links between a pipeline's window and the DAG run its `dag` sink started, both ways.

Nothing new is stored: a window's run (rtstream.dags.window_runs) is a run of type `window` whose data
interval is the window, and whose rows are the XCom of a task id named after the pipeline (a task the
DAG does not have). So a run shows `window` = {pipeline, start, end}, and a pipeline's window lists
`dag_runs` = the runs of that pipeline with that data interval (a window run in pieces: one each).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rtstream.dags.grid_view import DagGrid
from rtstream.model.window import iso_utc
from rtstream.windows.clock import epoch_ms


class LinkedGrid(DagGrid):
    def runs(self, dag_id: str, limit: int, before: str | None) -> dict[str, Any] | None:
        page = super().runs(dag_id, limit, before)
        if page is not None:
            self._link(dag_id, page["runs"])
        return page

    def run(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        doc = super().run(dag_id, run_id)
        if doc is not None:
            self._link(dag_id, [doc])
        return doc

    def _link(self, dag_id: str, runs: list[dict[str, Any]]) -> None:
        ids = [r["run_id"] for r in runs if r.get("run_type") == "window"]
        if not ids:
            return
        tasks = set(self.by_id[dag_id].task_dict) if dag_id in self.by_id else set()
        marks = ",".join("?" * len(ids))
        upstream = {run_id: task_id for run_id, task_id in self.store.query(
            f"SELECT DISTINCT run_id, task_id FROM xcom WHERE dag_id = ? AND run_id IN ({marks}) AND map_index = -1",
            (dag_id, *ids)) if task_id not in tasks}
        for r in runs:
            if r["run_id"] in upstream:
                r["window"] = {"pipeline": upstream[r["run_id"]], "window_start": _z(r["data_interval_start"]),
                               "window_end": _z(r["data_interval_end"])}

    def window_runs(self, pipeline: str, starts: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Window start (as the run history spells it) -> the DAG runs the pipeline's windows started."""
        by_interval = {datetime.fromtimestamp(epoch_ms(s) / 1000, tz=UTC).isoformat(): s for s in starts}
        if not by_interval:
            return {}
        marks = ",".join("?" * len(by_interval))
        rows = self.store.query(
            f"SELECT r.dag_id, r.run_id, r.state, r.interval_start FROM dag_run r WHERE r.run_type = 'window' AND "
            f"r.interval_start IN ({marks}) AND EXISTS (SELECT 1 FROM xcom x WHERE x.dag_id = r.dag_id AND "
            f"x.run_id = r.run_id AND x.task_id = ?) ORDER BY r.dag_id, r.logical_date", (*by_interval, pipeline))
        out: dict[str, list[dict[str, Any]]] = {}
        for dag_id, run_id, state, start in rows:
            if dag_id in self.by_id and pipeline not in self.by_id[dag_id].task_dict:
                out.setdefault(by_interval[start], []).append({"dag_id": dag_id, "run_id": run_id, "state": state})
        return out


def _z(text: str) -> str:
    """`2026-01-01T00:00:00+00:00` as the run history spells a window start: `2026-01-01T00:00:00Z`."""
    return iso_utc(epoch_ms(text))

