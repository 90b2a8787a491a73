"""The admin server's DAG routes: Airflow's grid over HTTP, and clear.

- `GET /api/dags`: every DAG the daemon runs (schedule, next run, tasks, latest run), and those it
  does not schedule with the reason;
- `GET /api/dags/<dag_id>/runs?limit=&before=`: the newest runs, a cell per task (state, tries),
  paged by logical date (`next_before`);
- `GET /api/dags/<dag_id>/runs/<run_id>`: one run's task instances with their tries (log lines) and XComs;
- `POST /api/dags/<dag_id>/dagRuns`: trigger a run, as Airflow's REST API (rtstream.admin.dag_trigger_api);
- `POST /api/dags/<dag_id>/runs/<run_id>/clear` `{"task_id": ..., "downstream": true}` (no task_id:
  the whole run): needs admin.token, even on loopback, as the window re-run does.
The server's auth middleware already guards `/api/`; every answer passes through its redaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from rtstream.admin.dag_trigger_api import TriggerRoute
from rtstream.model.dag_status import ClearRefused, DagsView

MAX_RUNS = 500
DEFAULT_RUNS = 25
Json = Callable[..., web.Response]


class DagRoutes:
    def __init__(self, view: DagsView, answer: Json, token: str | None):
        self.view, self.answer, self.token = view, answer, token

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/api/dags", self.dags)
        app.router.add_get("/api/dags/{dag_id}/runs", self.runs)
        app.router.add_get("/api/dags/{dag_id}/runs/{run_id}", self.run)
        app.router.add_post("/api/dags/{dag_id}/runs/{run_id}/clear", self.clear)
        TriggerRoute(self.view, self.answer, self.token).add_to(app)  # POST /api/dags/<dag_id>/dagRuns

    async def dags(self, request: web.Request) -> web.Response:
        return self.answer({"dags": await asyncio.to_thread(self.view.dags), "can_clear": bool(self.token)})

    async def runs(self, request: web.Request) -> web.Response:
        raw = request.query.get("limit", "0")
        if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or int(raw) > MAX_RUNS:
            return self.answer({"error": f"limit must be a whole number from 0 to {MAX_RUNS} "
                                         f"(0: the default, {DEFAULT_RUNS})"}, 400)
        before = request.query.get("before")
        if before is not None and (before := _logical_date(before)) is None:
            return self.answer({"error": "before must be a logical date, e.g. 2026-01-01T00:00:00+00:00 "
                                         "(a run's logical_date, or next_before)"}, 400)
        dag_id = request.match_info["dag_id"]
        doc = await asyncio.to_thread(self.view.runs, dag_id, int(raw) or DEFAULT_RUNS, before)
        if doc is None:
            return self.answer({"error": f"no DAG {dag_id!r} runs in this daemon"}, 404)
        return self.answer(doc)

    async def run(self, request: web.Request) -> web.Response:
        dag_id, run_id = request.match_info["dag_id"], request.match_info["run_id"]
        doc = await asyncio.to_thread(self.view.run, dag_id, run_id)
        if doc is None:
            return self.answer({"error": f"no run {run_id!r} of a DAG {dag_id!r} in this daemon"}, 404)
        return self.answer(doc)

    async def clear(self, request: web.Request) -> web.Response:
        if not self.token:
            return self.answer({"error": "clearing task instances needs admin.token to be set"}, 403)
        try:
            doc = await request.json(loads=orjson.loads) if request.can_read_body else {}
        except (ValueError, orjson.JSONDecodeError):
            return self.answer({"error": 'the body must be JSON: {"task_id": "...", "downstream": true} '
                                         '(or {} for the whole run)'}, 400)
        problem = _clear_problem(doc)
        if problem:
            return self.answer({"error": problem}, 400)
        try:
            done = self.view.clear(request.match_info["dag_id"], request.match_info["run_id"], doc.get("task_id"),
                                   doc.get("downstream", True), doc.get("recursive", False))
        except ClearRefused as exc:
            return self.answer({"error": str(exc)}, exc.status)
        return self.answer(done, 202)


def _clear_problem(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return 'the body must be a JSON object: {"task_id": "...", "downstream": true} (or {} for the whole run)'
    unknown = sorted(set(doc) - {"task_id", "downstream", "recursive"})
    if unknown:
        return f"unknown field(s) {', '.join(unknown)}: expected task_id, downstream and recursive"
    if "task_id" in doc and not (isinstance(doc["task_id"], str) and doc["task_id"]):
        return "task_id must be a task id (a non-empty string), or left out to clear the whole run"
    if not isinstance(doc.get("downstream", True), bool):
        return "downstream must be true or false"
    if not isinstance(doc.get("recursive", False), bool):
        return "recursive must be true or false (true: ExternalTaskMarkers clear their tasks in other DAGs)"
    return None


def _logical_date(text: str) -> str | None:
    """A logical date spelled as the store keeps it (UTC, `+00:00`); a naive one is UTC, as in Airflow."""
    if len(text) > 40:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
