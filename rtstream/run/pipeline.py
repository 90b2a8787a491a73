"""The Python API's pipeline: a flow built from nodes, its window and daemon settings, run in-process."""

from __future__ import annotations

from typing import Any

from rtstream.config.flow import Chain


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

        from rtstream.run.daemon import daemon_runtime
        from rtstream.run.process_setup import start_logging

        settings = self.settings()
        if not logging.getLogger().handlers:  # the CLI's logging, unless the program has set up its own
            start_logging(settings)
        return await daemon_runtime(settings).run()

    def run(self) -> int:
        """Run until every source is finished (finite sources) or SIGTERM / SIGINT; returns the exit code
        the CLI would: 0 after a clean stop or a finished run, 1 when a component failed (the log
        names it). Logs go to stderr like the CLI's (`daemon.log_level`, `daemon.log_format`) unless
        the program has configured logging itself. Rows go to the sinks; to get them back in Python,
        use `rtstream.testing.run(pipeline, records)`."""
        import asyncio

        return asyncio.run(self.run_async())
