"""rtstream: one long-lived asyncio daemon in place of a five-minute cron DAG.

The same pipeline as a config file's `flow = "fetch >> process >> store"`, built in Python:

    from rtstream import Pipeline, SinkNode, SourceNode, StageNode

    fetch = SourceNode("fetch", "generator", rate=50, count=1000, realtime=False)
    process = StageNode("process", "aggregate", key="user_id", aggregates={"events": "count()"})
    store = SinkNode("store", "sqlite", path="var/out.db")
    Pipeline(fetch >> process >> store, window={"size": "5m"}).run()

Custom components subclass the contracts of `rtstream.sources`, `rtstream.sinks` and `rtstream.stages`.
"""

from __future__ import annotations

__version__ = "0.1.0"

import warnings
from typing import Any

from rtstream.config.flow import Chain, SinkNode, SourceNode, StageNode
from rtstream.model.record import Record
from rtstream.model.window import Window
from rtstream.run.pipeline import Pipeline

# the flow nodes' names before 0.2, when they read like the component base classes of
# rtstream.sources / .sinks / .stages; still accepted, with a warning
_RENAMED = {"Source": SourceNode, "Stage": StageNode, "Sink": SinkNode}


def __getattr__(name: str) -> Any:
    if name in _RENAMED:
        node = _RENAMED[name]
        warnings.warn(f"rtstream.{name} is now rtstream.{node.__name__}", DeprecationWarning, stacklevel=2)
        return node
    raise AttributeError(f"module 'rtstream' has no attribute {name!r}")


__all__ = ["Pipeline", "Chain", "SourceNode", "StageNode", "SinkNode", "Record", "Window", "__version__"]
