"""rtstream: one long-lived asyncio daemon in place of a five-minute cron DAG.

The same pipeline as a config file's `flow = "fetch >> process >> store"`, built in Python:

    from rtstream import Pipeline, Source, Stage, Sink

    fetch = Source("fetch", "generator", rate=50, count=1000, realtime=False)
    process = Stage("process", "aggregate", key="user_id", aggregates={"events": "count()"})
    store = Sink("store", "sqlite", path="var/out.db")
    Pipeline(fetch >> process >> store, window={"size": "5m"}).run()
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import Any

from rtstream.core.flow import Chain, Node
from rtstream.core.record import Record, Window


class Source(Node):
    kind = "source"


class Stage(Node):
    kind = "stage"


class Sink(Node):
    kind = "sink"


class Pipeline:
    """A flow plus its window and daemon settings; `run()` runs it to the end (or to SIGTERM)."""

    def __init__(self, flow: Chain, name: str = "rtstream", window: dict[str, Any] | None = None,
                 daemon: dict[str, Any] | None = None, dead_letter: dict[str, Any] | None = None,
                 defaults: dict[str, Any] | None = None, state: dict[str, Any] | None = None):
        self.flow = flow
        self.name = name
        self.sections = {"window": window or {"size": "5m"}, "daemon": daemon or {},
                         "dead_letter": dead_letter or {}, "defaults": defaults or {}, "state": state or {}}

    def config(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"pipeline": {"name": self.name, "flow": str(self.flow)},
                               "sources": {}, "stages": {}, "sinks": {}}
        doc.update({k: v for k, v in self.sections.items() if v})
        for node in self.flow.nodes():
            doc[node.kind + "s"][node.name] = node.section()
        return doc

    def settings(self) -> Any:
        from rtstream.config.load import load_settings

        return load_settings(doc=self.config())

    async def run_async(self) -> int:
        from rtstream.core.runtime import Runtime

        return await Runtime(self.settings()).run()

    def run(self) -> int:
        import asyncio

        return asyncio.run(self.run_async())


__all__ = ["Pipeline", "Source", "Stage", "Sink", "Record", "Window", "__version__"]
