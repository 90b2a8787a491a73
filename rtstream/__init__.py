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

from rtstream.config.flow import Chain, Node
from rtstream.model.record import Record
from rtstream.model.window import Window


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
        """As `run`, inside a running event loop (signals are then left to that loop's owner)."""
        import logging

        from rtstream.run.pipeline_text import first_window_note
        from rtstream.runtime.supervisor import Runtime
        from rtstream.support.logs import setup_logging
        from rtstream.support.secrets import remember

        settings = self.settings()
        root = settings.root
        if not logging.getLogger().handlers:  # the CLI's logging, unless the program has set up its own
            setup_logging(root.daemon.log_level, root.daemon.log_format, root.pipeline.name, remember(settings))
        logging.getLogger("rtstream").info(first_window_note(settings))
        return await Runtime(settings).run()

    def run(self) -> int:
        """Run until every source is finished (finite sources) or SIGTERM / SIGINT; returns the exit code
        the CLI would: 0 after a clean stop or a finished run, 1 when a component failed (the log
        names it). Logs go to stderr like the CLI's (`daemon.log_level`, `daemon.log_format`) unless
        the program has configured logging itself. Rows go to the sinks; to get them back in Python,
        use `rtstream.testing.run(pipeline, records)`."""
        import asyncio

        return asyncio.run(self.run_async())


__all__ = ["Pipeline", "Source", "Stage", "Sink", "Record", "Window", "__version__"]
