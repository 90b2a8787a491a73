"""The flow: `fetch >> process >> [store, show]`, parsed from config or built with `>>` in Python.

A flow reads left to right: one or more sources (a list fans in), then stages in order, then one or
more sinks (a list fans out). Several chains (one a line) make a graph: rtstream.config.graph.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rtstream.model.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z_][\w\-]*$")
KEY = "pipeline.flow"


@dataclass(frozen=True)
class Flow:
    sources: list[str]
    stages: list[str]
    sinks: list[str]
    graph: Any = None  # rtstream.config.graph.Graph the flow was resolved from (not imported: graph imports flow)
    text: str | None = None  # the flow as written, when it is not one chain

    @property
    def branched(self) -> bool:
        """Several branches (fan-out to different stages, or fan-in after a stage): not one chain."""
        return self.graph is not None and self.graph.chain() is None

    def __str__(self) -> str:
        if self.text is not None:
            return self.text
        def part(names: list[str]) -> str:
            return names[0] if len(names) == 1 else "[" + ", ".join(names) + "]"

        return " >> ".join([part(self.sources), *self.stages, part(self.sinks)])


def parse_flow(text: str) -> list[list[str]]:
    """`"a >> b >> [c, d]"` -> `[["a"], ["b"], ["c", "d"]]`."""
    steps = []
    for raw in text.split(">>"):
        part = raw.strip()
        if part.startswith("[") and part.endswith("]"):
            names = [n.strip() for n in part[1:-1].split(",") if n.strip()]
        else:
            names = [part]
        for n in names:
            if not _NAME.match(n):
                raise ConfigError.at(KEY, f"invalid step {n or raw.strip()!r} in {text!r} "
                                          "(expected names joined by >>, e.g. 'fetch >> process >> [store, show]')")
        steps.append(names)
    return steps


def resolve_flow(steps: list[list[str]], kinds: dict[str, str]) -> Flow:
    """Check the steps against the defined components and split them into sources, stages, sinks."""
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for names in steps:
        for n in names:
            if n in seen:
                problems.append((KEY, f"{n!r} appears twice: a flow is a chain and cannot loop back"))
            seen.add(n)
            if n not in kinds:
                problems.append((KEY, f"{n!r} is not defined in [sources], [stages] or [sinks]"))
    if problems:
        raise ConfigError(problems)
    if len(steps) < 2:
        raise ConfigError.at(KEY, "a flow needs at least a source and a sink, e.g. 'fetch >> store'")
    first, last, middle = steps[0], steps[-1], steps[1:-1]
    for n in first:
        if kinds[n] != "source":
            problems.append((KEY, f"the flow must start with sources; {n!r} is a {kinds[n]}"))
    for n in last:
        if kinds[n] != "sink":
            problems.append((KEY, f"the flow must end with sinks; {n!r} is a {kinds[n]}"))
    stages = []
    for names in middle:
        if len(names) > 1:
            problems.append((KEY, f"[{', '.join(names)}]: only sources (first) and sinks (last) can be lists"))
        for n in names:
            if kinds[n] != "stage":
                problems.append((KEY, f"{n!r} is a {kinds[n]}; between the sources and the sinks only stages fit"))
            stages.append(n)
    unused = [n for n, k in kinds.items() if n not in seen]
    for n in unused:
        problems.append((f"{kinds[n]}s.{n}", "defined but not used in pipeline.flow"))
    if problems:
        raise ConfigError(problems)
    return Flow(list(first), stages, list(last))


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
