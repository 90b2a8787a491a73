"""A pipeline's windows with the DAG runs their `dag` sinks started (`dag_runs`: dag_id, run_id, state), read
from the DAGs' view (rtstream.dags.window_links) when the daemon runs DAGs: the grid's link from a window
to its run, the run's own `window` being the link back."""

from __future__ import annotations

from typing import Any


class LinkedHistory:
    """A run history whose windows carry their DAG runs; everything else is the history's own."""

    def __init__(self, history: Any, dags: Any, pipeline: str):
        self._history, self._dags, self._pipeline = history, dags, pipeline

    def windows(self, limit: int | None = None, before: str | None = None) -> list[dict[str, Any]]:
        return self._link(self._history.windows(limit, before))

    def window(self, start: str) -> dict[str, Any] | None:
        doc = self._history.window(start)
        return self._link([doc])[0] if doc is not None else None

    def _link(self, windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        runs = self._dags.window_runs(self._pipeline, [w["window_start"] for w in windows])
        for w in windows:
            w["dag_runs"] = runs.get(w["window_start"], [])
        return windows

    def __getattr__(self, name: str) -> Any:
        return getattr(self._history, name)  # logs, flushed_total, ...


class LinkedView:
    """A pipeline's status view whose history is linked; everything else is the view's own."""

    def __init__(self, view: Any, dags: Any):
        self._view = view
        self.history = LinkedHistory(view.history, dags, view.pipeline)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._view, name)


def linked(view: Any, dags: Any) -> Any:
    """`view` with its windows linked to their DAG runs, when the DAGs' view can tell them."""
    if view is None or getattr(dags, "window_runs", None) is None:
        return view
    return LinkedView(view, dags)
