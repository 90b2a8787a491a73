"""A recursive clear, as Airflow 2.10's `DAG.clear(recursive=True)` (`include_dependent_dags`): every
ExternalTaskMarker among the cleared tasks clears its `external_task_id` and that task's downstream
in the external DAG's run at the marker's `execution_date` (rendered with the run's logical date), and
so on through the markers found there, up to the marker's `recursion_depth`.

Everything is decided before anything changes: a run that is still running (rtstream clears finished
runs only) or a depth past the limit refuses the whole clear.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rtstream.airflow.dag_model import DAG
from rtstream.airflow.external_sensors import ExternalTaskMarker
from rtstream.airflow.templating import environment, render
from rtstream.dags.clearing import to_clear
from rtstream.dags.store import RunStore
from rtstream.model.dag_status import ClearRefused


def _marker_date(dag: DAG, marker: ExternalTaskMarker, logical_date: datetime, run_id: str) -> str:
    at = logical_date
    context = {"logical_date": at, "execution_date": at, "ds": at.strftime("%Y-%m-%d"), "ts": at.isoformat(),
               "run_id": run_id, "params": dict(dag.params or {})}
    try:
        text = str(render(marker.execution_date, context, environment(dag)))
        when = datetime.fromisoformat(text)
    except Exception as exc:  # noqa: BLE001 - a template of the DAG file: one line, the clear refused
        raise ClearRefused(400, f"{dag.dag_id}.{marker.task_id}: its execution_date "
                                f"{marker.execution_date!r} does not give a date-time: {exc}") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def dependent_clears(by_id: dict[str, DAG], store: RunStore, is_active: Any, dag: DAG, run_id: str,
                     task_ids: list[str]) -> list[tuple[DAG, str, list[str]]]:
    """The (DAG, run id, task ids) the markers among `task_ids` clear in other DAGs, transitively."""
    out: list[tuple[DAG, str, list[str]]] = []
    todo: list[tuple[DAG, str, list[str], int]] = [(dag, run_id, task_ids, 0)]
    seen: set[tuple[str, str, str]] = set()
    while todo:
        here, rid, tids, depth = todo.pop(0)
        stored = store.run(here.dag_id, rid)
        if stored is None:
            continue
        for tid in tids:
            marker = here.task_dict.get(tid)
            if not isinstance(marker, ExternalTaskMarker):
                continue
            if depth >= marker.recursion_depth:
                raise ClearRefused(400, f"Maximum recursion depth {marker.recursion_depth} reached for "
                                        f"ExternalTaskMarker {marker.task_id}. Attempted to clear too many tasks or "
                                        "there may be a cyclic dependency.")
            other = by_id.get(marker.external_dag_id)
            if other is None or marker.external_task_id not in other.task_dict:
                continue  # not a DAG (or task) of this daemon: nothing to clear there, as Airflow finds no TI
            at = _marker_date(here, marker, stored.logical_date, rid)
            rows = store.query("SELECT run_id FROM dag_run WHERE dag_id = ? AND logical_date = ?", (other.dag_id, at))
            if not rows or (other.dag_id, rows[0][0], marker.external_task_id) in seen:
                continue
            seen.add((other.dag_id, rows[0][0], marker.external_task_id))
            if is_active(other.dag_id, rows[0][0]):
                raise ClearRefused(409, f"run {rows[0][0]} of {other.dag_id} (after ExternalTaskMarker "
                                        f"{here.dag_id}.{marker.task_id}) is running: clear once it has finished")
            cleared = to_clear(other, marker.external_task_id, True)
            out.append((other, rows[0][0], cleared))
            todo.append((other, rows[0][0], cleared, depth + 1))
    return out
