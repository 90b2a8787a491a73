"""The flow: `fetch >> process >> [store, show]`, parsed from config or built with `>>` in Python.

A flow reads left to right: one or more sources (a list fans in), then stages in order, then one or
more sinks (a list fans out). Several chains (one a line) make a graph: rtstream.config.graph.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rtstream.model.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z_][\w\-]*$")
CHAIN_BREAK = re.compile(r"[;\n]")  # chains are separated by lines or `;`
KEY = "pipeline.flow"


@dataclass(frozen=True)
class Flow:
    sources: list[str]
    stages: list[str]
    sinks: list[str]
    graph: Any = None  # rtstream.config.graph.Graph the flow was resolved from (not imported: graph imports flow)
    text: str | None = None  # the flow as written, when it is not one chain
    # source -> its own per-record stages, run on its records only before the sources meet (they are
    # also at the head of `stages`): `a >> clean >> m >> out; b >> m`
    prefixes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def branched(self) -> bool:
        """Several branches (fan-out to different stages, or fan-in after a stage): not one chain."""
        return self.graph is not None and not self.prefixes and self.graph.chain() is None

    def __str__(self) -> str:
        if self.text is not None:
            return self.text
        def part(names: list[str]) -> str:
            return names[0] if len(names) == 1 else "[" + ", ".join(names) + "]"

        return " >> ".join([part(self.sources), *self.stages, part(self.sinks)])


def parse_chains(text: str) -> list[list[list[str]]]:
    """`"a >> b\\nb >> c"` -> `[[["a"], ["b"]], [["b"], ["c"]]]` (blank lines and `#` comments skipped)."""
    chains = []
    for raw_line in CHAIN_BREAK.split(text):
        line = raw_line.split("#", 1)[0].strip()
        if line:
            chains.append(_parse_chain(line))
    if not chains:
        raise ConfigError.at(KEY, "the flow is empty (expected e.g. 'fetch >> process >> [store, show]')")
    return chains


def _parse_chain(text: str) -> list[list[str]]:
    steps = []
    for raw in text.split(">>"):
        part = raw.strip()
        if part.startswith("[") and part.endswith("]"):
            names = [n.strip() for n in part[1:-1].split(",") if n.strip()]
        else:
            names = [part]
        for n in names or [""]:
            if not _NAME.match(n):
                shown = (n or raw.strip())[:80]
                raise ConfigError.at(KEY, f"invalid step {shown!r} in {text[:200]!r} (expected names joined by >>, "
                                          "e.g. 'fetch >> process >> [store, show]')")
        steps.append(names)
    if len(steps) < 2:
        raise ConfigError.at(KEY, f"{text[:200]!r}: a chain needs at least two steps, e.g. 'fetch >> store'")
    return steps



class Node:
    """A component in the Python API; `a >> b` chains them as the config's flow does."""

    kind: str = ""

    def __init__(self, name: str, type: str, **options: Any):
        self.name = name
        self.type = type
        self.options = options

    def section(self) -> dict[str, Any]:
        return {"type": self.type, **self.options}

    def __rshift__(self, other: Any) -> Chain:
        return Chain([[self]]) >> other

    def __rrshift__(self, other: Any) -> Chain:
        return Chain([_nodes(other)]) >> self


class SourceNode(Node):
    """A source in a flow built in Python (`SourceNode("fetch", "kafka", topics=[...])`)."""

    kind = "source"


class StageNode(Node):
    kind = "stage"


class SinkNode(Node):
    kind = "sink"


class Chain:
    def __init__(self, steps: list[list[Node]]):
        self.steps = steps

    def __rshift__(self, other: Any) -> Chain:
        if isinstance(other, Chain):
            return Chain(self.steps + other.steps)
        return Chain(self.steps + [_nodes(other)])

    def __str__(self) -> str:
        return " >> ".join(s[0].name if len(s) == 1 else "[" + ", ".join(n.name for n in s) + "]"
                           for s in self.steps)

    def nodes(self) -> Iterable[Node]:
        for step in self.steps:
            yield from step


def _nodes(x: Any) -> list[Node]:
    items = list(x) if isinstance(x, (list, tuple)) else [x]
    for n in items:
        if not isinstance(n, Node):
            raise TypeError(f"cannot chain {n!r}: expected a Source, Stage or Sink")
    return items
