"""The flow as a graph: one or more chains (one a line, or separated by `;`), names shared across
chains being one node.

```
bids >> per_auction >> hottest >> top_out
bids >> per_bidder >> bidder_out
```

A source named in two chains fans out (each branch gets all of its records); a node with several
inputs fans in. `a >> b >> [c, d]` means what it always meant: a list fans out (or in, on the left).
Checked here: every name is defined and used, sources have no input and sinks no output, nothing
loops back (refused with the loop's path), every node is reached from a source and reaches a sink,
and a join's `left`/`right` name its inputs. A graph that is one chain becomes the `Flow` the
runtime runs (rtstream.config.flow).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rtstream.config.flow import CHAIN_BREAK, KEY, Flow, parse_chains
from rtstream.model.errors import ConfigError

MAX_NODES = 1000  # a flow past this is a mistake (or an attack on the parser), not a pipeline
MAX_BRANCHES = 100  # drawn; a graph with more paths says how many it left out


@dataclass
class Graph:
    """The nodes (name -> kind: source, stage, sink) and their edges, in the order the flow wrote them."""

    kinds: dict[str, str]
    edges: list[tuple[str, str]] = field(default_factory=list)
    _ins: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _outs: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for a, b in self.edges:
            self._outs.setdefault(a, []).append(b)
            self._ins.setdefault(b, []).append(a)

    def inputs(self, name: str) -> list[str]:
        return self._ins.get(name, [])

    def outputs(self, name: str) -> list[str]:
        return self._outs.get(name, [])

    def names(self, kind: str) -> list[str]:
        return [n for n, k in self.kinds.items() if k == kind]

    def chain(self) -> tuple[list[str], list[str], list[str]] | None:
        """(sources, stages, sinks) when the graph is one chain `[sources] >> s1 >> ... >> [sinks]`
        (what the runtime runs today), else None."""
        sources, sinks = self.names("source"), self.names("sink")
        stages: list[str] = []
        frontier = sources
        while True:
            outs = {b for a in frontier for b in self.outputs(a)}
            if not outs or any(set(self.outputs(a)) != outs for a in frontier):
                return None
            if any(set(self.inputs(b)) != set(frontier) for b in outs):
                return None
            if outs == set(sinks):
                return sources, stages, sinks
            if len(outs) != 1 or self.kinds[next(iter(outs))] != "stage":
                return None
            stages.append(next(iter(outs)))
            frontier = stages[-1:]

    def prefixed(self) -> tuple[dict[str, list[str]], list[str], list[str]] | None:
        """({source: its own stages}, stages, sinks) when each source has its own stages before they
        all meet in one stage, and one chain follows: `a >> clean >> m >> out; b >> m`, else None."""
        ends, prefixes = set(), {}
        for src in self.names("source"):
            cur, path = src, []
            while len(self.outputs(cur)) == 1 and self.kinds[self.outputs(cur)[0]] == "stage" \
                    and self.inputs(self.outputs(cur)[0]) == [cur]:
                cur = self.outputs(cur)[0]
                path.append(cur)
            if len(self.outputs(cur)) != 1:
                return None
            ends.add(cur)
            prefixes[src] = path
            meet = self.outputs(cur)[0]
        if not any(prefixes.values()) or self.kinds[meet] != "stage" or set(self.inputs(meet)) != ends:
            return None
        stages = [meet]
        while len(self.outputs(stages[-1])) == 1 and self.kinds[self.outputs(stages[-1])[0]] == "stage" \
                and self.inputs(self.outputs(stages[-1])[0]) == stages[-1:]:
            stages.append(self.outputs(stages[-1])[0])
        sinks = self.outputs(stages[-1])
        if set(sinks) != set(self.names("sink")) or any(self.inputs(k) != stages[-1:] for k in sinks):
            return None
        return prefixes, stages, sinks

    def branches(self, limit: int = MAX_BRANCHES) -> list[list[str]]:
        """Paths from a source to a sink, in the order the flow named them (at most `limit`: fan-outs
        after fan-ins multiply paths)."""
        out: list[list[str]] = []
        todo = [[s] for s in reversed(self.names("source"))]
        while todo and len(out) < limit:
            path = todo.pop()
            outs = self.outputs(path[-1])
            if not outs:
                out.append(path)
            todo.extend([*path, b] for b in reversed(outs))
        return out

    def draw(self) -> str:
        """A readable drawing: one line a branch, a node met before shown as `(name)` where it joins,
        its fan-in named after it."""
        lines: list[str] = []
        drawn: set[str] = set()
        for path in self.branches():
            parts = []
            for i, n in enumerate(path):
                label = n
                ins = self.inputs(n)
                if len(ins) > 1 and i > 0:
                    others = [x for x in ins if x != path[i - 1]]
                    label = f"{n} (also from {', '.join(others)})"
                if n in drawn and i < len(path) - 1 and all(m in drawn for m in path[i + 1:]):
                    parts.append(f"({n}) ...")  # the rest of this branch is drawn above
                    break
                parts.append(label)
            lines.append("  " + " >> ".join(parts))
            drawn.update(path)
        kinds = {"source": "sources", "stage": "stages", "sink": "sinks"}
        fans = [f"  {n} fans out to {', '.join(self.outputs(n))}" for n in self.kinds if len(self.outputs(n)) > 1]
        head = ", ".join(f"{len(self.names(k))} {v}" for k, v in kinds.items())
        more = ["  ... more branches than drawn"] if len(lines) >= MAX_BRANCHES else []
        return "\n".join([f"graph      {len(lines)} branch{'es' if len(lines) != 1 else ''} ({head})", *lines, *more,
                          *fans])


def build_graph(chains: list[list[list[str]]], kinds: Mapping[str, str],
                sections: Mapping[str, Mapping[str, Any]] | None = None) -> Graph:
    """The checked graph of `chains`; `sections` (stage name -> its config table) lets a join's
    `left` and `right` be checked against its inputs. Every problem is raised at once."""
    problems: list[tuple[str, str]] = []
    order: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    for chain in chains:
        for names in chain:
            for n in names:
                if n not in kinds:
                    why = (KEY, f"{_q(n)} is not defined in [sources], [stages] or [sinks]")
                    if why not in problems:
                        problems.append(why)
                else:
                    order.setdefault(n, kinds[n])
        for left, right in zip(chain, chain[1:], strict=False):
            for a in left:
                for b in right:
                    if a == b:
                        problems.append((KEY, f"{a!r} feeds itself: {a} >> {a}"))
                    elif (a, b) not in edges:
                        edges.append((a, b))
    if len(order) > MAX_NODES:
        raise ConfigError.at(KEY, f"the flow names {len(order)} components; at most {MAX_NODES} are supported")
    if problems:
        raise ConfigError(problems)
    graph = Graph(order, edges)
    for n, kind in order.items():
        if kind == "source" and graph.inputs(n):
            problems.append((KEY, f"{n!r} is a source: nothing can feed it (it is after {graph.inputs(n)[0]!r})"))
        if kind == "sink" and graph.outputs(n):
            problems.append((KEY, f"{n!r} is a sink: it feeds nothing (it is before {graph.outputs(n)[0]!r})"))
    loop = _cycle(graph)
    if loop:
        problems.append((KEY, f"the flow loops back: {' >> '.join(loop)}"))
    for n, kind in kinds.items():
        if n not in order:
            problems.append((f"{kind}s.{n}", "defined but not used in pipeline.flow"))
    if not graph.names("source"):
        problems.append((KEY, "the flow has no source, e.g. 'fetch >> store'"))
    if not graph.names("sink"):
        problems.append((KEY, "the flow has no sink, e.g. 'fetch >> store'"))
    if not problems:
        reached = _reach(graph, graph.names("source"), graph.outputs)
        ends = _reach(graph, graph.names("sink"), graph.inputs)
        for n in order:
            if n not in reached:
                problems.append((KEY, f"{n!r} is reached from no source (add e.g. 'SOURCE >> {n}')"))
            elif n not in ends:
                problems.append((KEY, f"{n!r} leads to no sink (add e.g. '{n} >> SINK')"))
    problems.extend(_join_sides(graph, sections or {}))
    if problems:
        raise ConfigError(problems)
    return graph


def _cycle(graph: Graph) -> list[str] | None:
    """The first loop found, as a path that starts and ends at the same node; None when there is none.
    Iterative: a chain of a thousand stages must not meet Python's recursion limit."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in graph.kinds:
        if root in state:
            continue
        path = [root]
        stack = [iter(graph.outputs(root))]
        state[root] = 1
        while stack:
            b = next(stack[-1], None)
            if b is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(b) == 1:
                return [*path[path.index(b):], b]
            elif b not in state:
                state[b] = 1
                path.append(b)
                stack.append(iter(graph.outputs(b)))
    return None


def _q(name: str) -> str:
    """A name as a reason quotes it: a huge one is cut."""
    return repr(name if len(name) <= 80 else name[:80] + "...")


def _reach(graph: Graph, start: list[str], step: Any) -> set[str]:
    seen = set(start)
    todo = list(start)
    while todo:
        for m in step(todo.pop()):
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


def _origin(graph: Graph, name: str) -> str:
    """The source a node's records all come from, through per-record stages of that source alone
    (`orders >> clean >> match`: clean's origin is orders); the node itself otherwise."""
    seen = {name}
    while graph.kinds.get(name) == "stage":
        ins = graph.inputs(name)
        if len(ins) != 1 or ins[0] in seen:
            return name
        name = ins[0]
        seen.add(name)
    return name


def join_side_source(graph: Graph, join: str, named: str) -> str:
    """The source a join's side names: itself, or the source whose own per-record stage `named` is
    (`orders >> clean >> match`: `left = "clean"` is `orders`), when `named` feeds `join`."""
    origin = _origin(graph, named)
    return origin if named in graph.inputs(join) and origin in graph.names("source") else named


def _join_sides(graph: Graph, sections: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """A join names its sides by its inputs (the nodes right before it in the flow), or by the source of
    an input that is that source's own per-record stages (the side's records keep their source's name)."""
    problems = []
    for n, body in sections.items():
        if n not in graph.kinds or not isinstance(body, Mapping) or body.get("type") not in ("join", "interval_join"):
            continue
        ins = graph.inputs(n)
        origin = {i: join_side_source(graph, n, i) for i in ins}
        sides = {}
        for side in ("left", "right"):
            named = body.get(side)
            if not isinstance(named, str):
                continue  # the join's own model says what is missing
            sides[side] = join_side_source(graph, n, named)
            if named not in ins and named not in origin.values():
                problems.append((f"stages.{n}.{side}", f"{named[:80]!r} is not an input of {n!r} in pipeline.flow "
                                                       f"(its inputs: {', '.join(ins) or 'none'})"))
        split = body.get("type") == "join" and body.get("left_where") is not None and body.get("right_where") is not None
        if len(sides) == 2 and sides["left"] == sides["right"] and not split:  # one input's kinds: left_where/right_where
            problems.append((f"stages.{n}.right", f"the same input as left ({body['left']!r}): a join needs two "
                             "(or, for one input's two kinds of rows, left_where and right_where)"))
        elif len(sides) == 2 and set(sides.values()) <= set(origin.values()) and len(ins) > 2:
            extra = [i for i in ins if i not in (body["left"], body["right"])]
            problems.append((KEY, f"{n!r} is a join of {body['left']!r} and {body['right']!r}; "
                                  f"{', '.join(map(repr, extra))} cannot feed it too"))
    return problems


def flow_of(text: str, kinds: Mapping[str, str], sections: Mapping[str, Mapping[str, Any]] | None = None) -> Flow:
    """The flow `text` describes, checked: one chain as the runtime runs it, or a graph of branches."""
    graph = build_graph(parse_chains(text), kinds, sections)
    chain = graph.chain()
    if chain is not None:
        return Flow(*chain, graph=graph)
    written = "; ".join(line.split("#", 1)[0].strip() for line in CHAIN_BREAK.split(text) if line.split("#", 1)[0].strip())
    shape = graph.prefixed()
    if shape is not None:  # the sources' own (per-record) stages first, then the chain they meet in
        prefixes, stages, sinks = shape
        own = [n for names in prefixes.values() for n in names]
        return Flow(graph.names("source"), [*own, *stages], sinks, graph=graph, text=written,
                    prefixes={s: names for s, names in prefixes.items() if names})
    return Flow(graph.names("source"), graph.names("stage"), graph.names("sink"), graph=graph, text=written)
