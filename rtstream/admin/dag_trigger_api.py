"""`POST /api/dags/{dag_id}/dagRuns`: trigger a run, with Airflow 2.10 REST API's body and answers.

Body (every field optional): `conf` (a JSON object, or a string holding one), `logical_date` (or the
deprecated `execution_date`; both only when equal), `dag_run_id`, `data_interval_start` with
`data_interval_end`. Answers: 200 and the run (queued); 404 for a DAG the daemon does not run; 409 when
that run id or logical date is taken; 400 for a bad body, one line saying which field and why. It
needs admin.token, even on loopback, as clear does (the server's auth middleware checks the bearer).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from rtstream.model.dag_status import ClearRefused, DagsView

FIELDS = ("conf", "logical_date", "execution_date", "dag_run_id", "data_interval_start", "data_interval_end")
MAX_DATE = 64
Json = Callable[..., web.Response]


class BadBody(ValueError):
    pass


def _date(doc: dict[str, Any], key: str) -> datetime | None:
    raw = doc.get(key)
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > MAX_DATE:
        raise BadBody(f"{key} must be an ISO-8601 date-time with its offset, e.g. 2026-01-01T00:00:00+00:00")
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise BadBody(f"{key}: {raw!r} is not an ISO-8601 date-time (e.g. 2026-01-01T00:00:00+00:00)") from None
    if at.tzinfo is None:
        raise BadBody(f"{key}: a naive datetime is disallowed (give its offset, e.g. +00:00), as in Airflow")
    return at


def parse_body(doc: Any) -> tuple[dict[str, Any], datetime | None, str | None, tuple[datetime, datetime] | None]:
    """(conf, logical date, run id, data interval) of a trigger's body; raises BadBody."""
    if not isinstance(doc, dict):
        raise BadBody('the body must be a JSON object, e.g. {"conf": {"key": "value"}} (or {})')
    unknown = sorted(set(doc) - set(FIELDS))
    if unknown:
        raise BadBody(f"unknown field(s) {', '.join(unknown)[:200]}: expected {', '.join(FIELDS)}")
    conf = doc.get("conf") or {}
    if isinstance(conf, str):  # Airflow's ConfObject takes a JSON string too
        try:
            conf = orjson.loads(conf)
        except orjson.JSONDecodeError:
            raise BadBody("conf: a string must hold a JSON object") from None
    if not isinstance(conf, dict):
        raise BadBody("conf must be a JSON object (dag_run.conf is a dict)")
    logical, execution = _date(doc, "logical_date"), _date(doc, "execution_date")
    if logical is not None and execution is not None and logical != execution:
        raise BadBody("logical_date conflicts with execution_date (give one of them)")
    run_id = doc.get("dag_run_id")
    if run_id is not None and not (isinstance(run_id, str) and run_id):
        raise BadBody("dag_run_id must be a non-empty string (or left out: manual__<logical date>)")
    start, end = _date(doc, "data_interval_start"), _date(doc, "data_interval_end")
    if (start is None) != (end is None):
        raise BadBody("Both 'data_interval_start' and 'data_interval_end' must be specified together")
    if start is not None and end is not None and end < start:
        raise BadBody("data_interval_end is before data_interval_start")
    return conf, logical or execution, run_id, (start, end) if start is not None and end is not None else None


class TriggerRoute:
    def __init__(self, view: DagsView, answer: Json, token: str | None):
        self.view, self.answer, self.token = view, answer, token

    def add_to(self, app: web.Application) -> None:
        app.router.add_post("/api/dags/{dag_id}/dagRuns", self.trigger)

    async def trigger(self, request: web.Request) -> web.Response:
        if not self.token:
            return self.answer({"error": "triggering a DAG run needs admin.token to be set"}, 403)
        dag_id = request.match_info["dag_id"]
        if not self.view.knows(dag_id):
            return self.answer({"error": f"DAG with dag_id: '{dag_id[:250]}' not found in this daemon"}, 404)
        try:
            doc = await request.json(loads=orjson.loads) if request.can_read_body else {}
        except (ValueError, UnicodeDecodeError, orjson.JSONDecodeError):
            return self.answer({"error": 'the body must be JSON, e.g. {"conf": {"key": "value"}} (or {})'}, 400)
        try:
            conf, logical_date, run_id, interval = parse_body(doc)
        except BadBody as exc:
            return self.answer({"error": str(exc)}, 400)
        try:  # on the loop, no await: decided and written at once (rtstream.dags.triggering)
            run = self.view.trigger(dag_id, conf, logical_date, run_id, interval)
        except ClearRefused as exc:
            return self.answer({"error": str(exc)}, exc.status)
        return self.answer(run, 200)
