"""The admin server of a daemon that runs several pipelines (rtstream.run.pipelines_daemon).

The same server, pages and probes as one pipeline's (rtstream.admin.server), over a view of every
pipeline: `/api/status` lists the pipelines (name, state, windows, lag, last error) and the DAGs (id,
schedule, next run, last run state); `/api/runs` and `/api/window` take `pipeline=NAME`; `/metrics`
carries a `pipeline` label; the page lists the pipelines above the DAGs' grid.
"""

from __future__ import annotations

import copy
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from rtstream.admin.server import AdminServer
from rtstream.admin.window_links import linked

if TYPE_CHECKING:
    from rtstream.connect.http_guard import HttpLimits
    from rtstream.model.dag_status import DagsView
    from rtstream.model.status import StatusView


class PipelinesStatus(Protocol):
    """What rtstream.run.pipelines_status provides beside the StatusView of them all."""

    def names(self) -> list[str]: ...
    def view_of(self, name: str) -> StatusView | None: ...
    def rows(self) -> list[dict[str, Any]]: ...


class PipelinesAdmin(AdminServer):
    def __init__(self, view: Any, listen: str, token: str | None, limits: HttpLimits, dags: DagsView | None,
                 secrets: list[str]):
        super().__init__(view, listen, token, None, limits=limits, dags=dags)
        self.scrubber.add(secrets)  # every pipeline's (the log filters hold this very scrubber)
        self.pipelines: PipelinesStatus = view

    def _pick(self, request: web.Request) -> AdminServer | web.Response:
        """This server as it would be for the pipeline `?pipeline=NAME`, or the answer saying what is wrong."""
        names = self.pipelines.names()
        name = request.query.get("pipeline")
        if name is None:
            return self._json({"error": f"give the pipeline: ?pipeline=NAME (one of: {', '.join(names)})"}, 400)
        view = self.pipelines.view_of(name) if name in names else None
        if view is None:
            shown = name if len(name) <= 64 and name.isprintable() else name[:64].encode("unicode_escape").decode()
            why = "not running at the moment" if name in names else "no such pipeline"
            return self._json({"error": f"{why}: {shown!r} (pipelines: {', '.join(names)})"}, 404)
        one = copy.copy(self)  # shares the guard, scrubber and samples; only the view differs
        one.view = linked(view, self.dags)  # each window with the DAG runs its `dag` sinks started
        return one

    async def runs(self, request: web.Request) -> web.Response:
        one = self._pick(request)
        return one if isinstance(one, web.Response) else await AdminServer.runs(one, request)

    async def window(self, request: web.Request) -> web.Response:
        one = self._pick(request)
        return one if isinstance(one, web.Response) else await AdminServer.window(one, request)

    async def rerun(self, request: web.Request) -> web.Response:
        return self._json({"error": "re-running a window is for a config of one pipeline: run `rtstream backfill` "
                                    "on a config holding that pipeline alone"}, 409)

    async def status(self, request: web.Request) -> web.Response:
        dags = self.dags.dags() if self.dags is not None else []
        problems = self.view.readiness() if self.view is not None else {}
        return self._json({
            "pipeline": None, "ready": not problems, "problems": problems, "pipelines": self.pipelines.rows(),
            "dags": [{"dag_id": d["dag_id"], "schedule": d["schedule"], "next_run": d["next_run"],
                      "last_run": d["latest_run"], "runs_by_state": d["runs_by_state"]} for d in dags],
            "samples": list(self.samples), "rates": self.rates(), "errors": list(self.errors.items)[::-1]})

    async def page(self, request: web.Request) -> web.Response:
        resp = await AdminServer.page(self, request)
        part = resources.files("rtstream.admin").joinpath("page").joinpath("pipelines.html").read_text(encoding="utf-8")
        sections, script = part.split("<!-- script -->")
        html = str(resp.text).replace("<main>", "<main>" + sections, 1).replace("</body>", script + "</body>", 1)
        headers = {k: v for k, v in resp.headers.items() if k.lower() != "content-type"}
        return web.Response(text=html, content_type="text/html", headers=headers)
