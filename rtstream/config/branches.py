"""A graph of several branches, as the runtime runs it: each branch is `sources >> stages >> sinks`,
with its own per-record stages, its own window (its windowed aggregate's `window`, or `[window]`)
and its own window stages and sinks; branches share only sources (a source named in two chains
fans out: every branch gets all of its records).

What is not run yet is refused here with the reason (never run differently): a stage fed by
another stage and something else (a fan-in after stages; a join, when it comes, names its sides),
a stage feeding several stages (fan out from the source instead), and what a branched run cannot keep
exact: it resumes
from checkpoints only (`state.checkpoint_interval`), so no Kafka `exactly_once` and no awaiting
(`lookup`) stage yet. A sink may be fed by several branches (rtstream.config.shared_sinks says which).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rtstream.config.flow import Flow
from rtstream.config.graph import Graph
from rtstream.config.models import RootConfig
from rtstream.model.errors import ConfigError

KEY = "pipeline.flow"
MAX_BRANCHES = 64  # the commit rule tells branches' holds apart by id * 64 + branch (rtstream.engine.branches)


@dataclass(frozen=True)
class Branch:
    sources: list[str]
    stages: list[str]
    sinks: list[str]

    def __str__(self) -> str:
        def part(names: list[str]) -> str:
            return names[0] if len(names) == 1 else "[" + ", ".join(names) + "]"

        return " >> ".join([part(self.sources), *self.stages, part(self.sinks)])

    @property
    def name(self) -> str:
        """What a sink several branches feed tells this branch's rows by: its last stage (or its sources)."""
        return self.stages[-1] if self.stages else "+".join(self.sources)


def plan_branches(graph: Graph) -> list[Branch]:
    """The branches of `graph` in the order the flow named them; what cannot run is refused."""
    kinds = graph.kinds
    problems: list[tuple[str, str]] = []
    branches: list[Branch] = []
    for n, kind in kinds.items():
        if kind != "stage":
            continue
        ins, outs = graph.inputs(n), graph.outputs(n)
        fed_by_stage = [i for i in ins if kinds[i] == "stage"]
        if fed_by_stage and len(ins) > 1:
            problems.append((KEY, f"{n!r} merges {', '.join(ins)}: a fan-in after a stage is not run yet, but "
                                  "after a source's own per-record stages into one chain (or merge the sources: "
                                  "'[a, b] >> stage')"))
        feeds = [o for o in outs if kinds[o] == "stage"]
        if feeds and len(outs) > 1:
            problems.append((KEY, f"{n!r} feeds {', '.join(outs)}: a stage feeding several branches is not run "
                                  "yet (fan out from the source instead, one chain per branch)"))
        if not fed_by_stage:  # a branch's first stage
            stages = [n]
            while len(graph.outputs(stages[-1])) == 1 and kinds[graph.outputs(stages[-1])[0]] == "stage" \
                    and graph.inputs(graph.outputs(stages[-1])[0]) == stages[-1:]:
                stages.append(graph.outputs(stages[-1])[0])
            sinks = [o for o in graph.outputs(stages[-1]) if kinds[o] == "sink"]
            branches.append(Branch(list(ins), stages, sinks))
    direct: dict[tuple[str, ...], list[str]] = {}  # sources straight into sinks, grouped by their sources
    for n, kind in kinds.items():
        fed_by = tuple(i for i in graph.inputs(n) if kinds[i] == "source")
        if kind == "sink" and fed_by:
            direct.setdefault(fed_by, []).append(n)
    branches += [Branch(list(srcs), [], sinks) for srcs, sinks in direct.items()]
    for sink in graph.names("sink"):  # a sink fed by several branches takes each one's windows
        covered = {i for b in branches if sink in b.sinks for i in (b.stages[-1:] or b.sources)}
        if covered != set(graph.inputs(sink)):
            problems.append((KEY, f"sink {sink!r} is fed by {', '.join(graph.inputs(sink))}, not all of them "
                                  "ends of branches"))
    if len(branches) > MAX_BRANCHES:
        problems.append((KEY, f"{len(branches)} branches; at most {MAX_BRANCHES} are run"))
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return branches


def branch_problems(root: RootConfig, flow: Flow, components: dict[str, Any]) -> list[tuple[str, str]]:
    """What a branched flow asks of the rest of the config (and the shapes not run yet); a source's
    own stages before the sources meet must be per-record ones."""
    problems: list[tuple[str, str]] = []
    for src, names in flow.prefixes.items():
        for n in names:
            if not getattr(components[n].cls, "per_record", False):
                problems.append((f"stages.{n}", f"runs on {src!r}'s records only, before the sources meet: it "
                                                "must be a per-record stage (map, lookup)"))
    if not flow.branched:
        return problems
    try:
        plan_branches(flow.graph)
    except ConfigError as exc:
        problems += exc.problems
    if root.state.checkpoint_interval is None:
        problems.append(("state.checkpoint_interval", "a flow of several branches needs it (e.g. \"10s\"): each "
                                                      "branch's windows are restored from the checkpoint, and the "
                                                      "commit never passes the last one"))
    for name in flow.sinks:
        if getattr(components[name].config, "exactly_once", False):
            problems.append((f"sinks.{name}.exactly_once", "not with a flow of several branches yet: each "
                                                           "branch's windows commit apart"))
    for name in flow.stages:
        if getattr(components[name].cls, "awaits_per_batch", False):
            problems.append((f"stages.{name}", f"a {getattr(components[name].cls, 'type_name', 'lookup')} stage "
                                               "is not run in a flow of several branches yet"))
    return problems
