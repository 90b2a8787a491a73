"""The Python API's pipeline: a flow built from nodes, its window and daemon settings, run in-process."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rtstream.config.flow import Chain, Node


class Pipeline:
    """A flow plus its window and daemon settings; `run()` runs it to the end (or to SIGTERM)."""

    def __init__(self, flow: Chain | Sequence[Chain], name: str = "rtstream", window: dict[str, Any] | None = None,
                 daemon: dict[str, Any] | None = None, dead_letter: dict[str, Any] | None = None,
                 defaults: dict[str, Any] | None = None, state: dict[str, Any] | None = None):
        # several chains make a graph: a node named in two of them is one node (rtstream.config.graph)
        self.chains = [flow] if isinstance(flow, Chain) else list(flow)
        self.flow = flow
        self.name = name
        self.sections = {"window": window or {"size": "5m"}, "daemon": daemon or {},
                         "dead_letter": dead_letter or {}, "defaults": defaults or {}, "state": state or {}}

    def config(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"pipeline": {"name": self.name, "flow": "\n".join(map(str, self.chains))},
                               "sources": {}, "stages": {}, "sinks": {}}
        doc.update({k: v for k, v in self.sections.items() if v})
        seen: dict[str, Node] = {}
        for chain in self.chains:
            for node in chain.nodes():
                other = seen.setdefault(node.name, node)
                if other is not node and (other.kind, other.section()) != (node.kind, node.section()):
                    raise ValueError(f"two different nodes are named {node.name!r}: a name is one node of the flow")
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
