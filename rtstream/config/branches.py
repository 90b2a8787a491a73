"""A graph of several branches, as the runtime runs it: each branch is `sources >> stages >> sinks`,
with its own per-record stages, its own window (its windowed aggregate's `window`, or `[window]`)
and its own window stages and sinks; branches share sources (a source named in two chains fans
out: every branch gets all of its records) and what comes before a fan-out (`a >> clean >> [x, y]`,
`a >> per_min >> [top, bottom]`: the branches' `trunk`, per-record stages run once per record before
they part, then at most one windowed aggregate whose windows each branch after it gets).

What is not run yet is refused here with the reason (never run differently): a stage fed by
another stage and something else (a fan-in after stages; a join, when it comes, names its sides),
a window stage before a fan-out, a fan-out after a fan-out, a stage keeping state before a
fan-out, and what a
branched run cannot keep exact: it resumes from checkpoints only (`state.checkpoint_interval`), so
no Kafka `exactly_once` and no awaiting (`lookup`) stage yet. A sink may be fed by several branches
(rtstream.config.shared_sinks says which).
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    # per-record stages before a fan-out (`a >> clean >> [x, y]`): run once per record, before the
    # branches part (rtstream.runtime.branch_build stages them per batch), shared by those branches
    trunk: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        def part(names: list[str]) -> str:
            return names[0] if len(names) == 1 else "[" + ", ".join(names) + "]"

        return " >> ".join([part(self.sources), *self.trunk, *self.stages, part(self.sinks)])

    @property
    def name(self) -> str:
        """What a sink several branches feed tells this branch's rows by: its last stage (or its sources)."""
        return (self.stages or self.trunk)[-1] if self.stages or self.trunk else "+".join(self.sources)


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
        if fed_by_stage:
            continue
        stages = _run_from(graph, n)  # a branch's first stage, and the chain it starts
        outs = graph.outputs(stages[-1])
        if len(outs) > 1 and any(kinds[o] == "stage" for o in outs):  # a trunk: it feeds several branches
            branches += _after_trunk(graph, ins, stages, problems)
        else:
            branches.append(Branch(list(ins), stages, [o for o in outs if kinds[o] == "sink"]))
    direct: dict[tuple[str, ...], list[str]] = {}  # sources straight into sinks, grouped by their sources
    for n, kind in kinds.items():
        fed_by = tuple(i for i in graph.inputs(n) if kinds[i] == "source")
        if kind == "sink" and fed_by:
            direct.setdefault(fed_by, []).append(n)
    branches += [Branch(list(srcs), [], sinks) for srcs, sinks in direct.items()]
    for sink in graph.names("sink"):  # a sink fed by several branches takes each one's windows
        covered = {i for b in branches if sink in b.sinks for i in (b.stages[-1:] or b.trunk[-1:] or b.sources)}
        if covered != set(graph.inputs(sink)):
            problems.append((KEY, f"sink {sink!r} is fed by {', '.join(graph.inputs(sink))}, not all of them "
                                  "ends of branches"))
    if len(branches) > MAX_BRANCHES:
        problems.append((KEY, f"{len(branches)} branches; at most {MAX_BRANCHES} are run"))
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return branches


def _run_from(graph: Graph, first: str) -> list[str]:
    """The chain of stages from `first` while each feeds one stage that only it feeds."""
    stages = [first]
    while len(graph.outputs(stages[-1])) == 1 and graph.kinds[graph.outputs(stages[-1])[0]] == "stage" \
            and graph.inputs(graph.outputs(stages[-1])[0]) == stages[-1:]:
        stages.append(graph.outputs(stages[-1])[0])
    return stages


def _trunk_problems(graph: Graph, sources: list[str], trunk: list[str]) -> list[tuple[str, str]]:
    """A trunk runs on every record of its sources once, before the branches part: its sources
    must feed it only (a branch of theirs beside it would get the trunk's rows too)."""
    out = []
    for s in sources:
        others = [o for o in graph.outputs(s) if o != trunk[0]]
        if graph.kinds[s] != "source":
            out.append((KEY, f"{trunk[-1]!r} feeds several branches after a fan-in: not run yet"))
        elif others:
            out.append((KEY, f"{trunk[-1]!r} feeds several branches, so it runs once on every record of {s!r} "
                             f"before they part; {s!r} cannot also feed {', '.join(others)} (put it after "
                             f"{trunk[-1]!r}, or give it a source of its own)"))
    return out


def _trunk_kinds(flow: Flow, trunk: list[str], components: dict[str, Any]) -> list[tuple[str, str]]:
    """A trunk is per-record stages, then at most a windowed aggregate whose closed windows every
    branch after it gets (`a >> per_min >> [top, bottom]`)."""
    out = []
    for i, n in enumerate(trunk):
        cls = components[n].cls
        if getattr(cls, "per_record", False):
            if getattr(cls, "stateful", False):
                out.append((f"stages.{n}", f"a {getattr(cls, 'type_name', 'stateful')} stage keeps state in the "
                                           "fold, and cannot run before a fan-out yet (it would run once per branch)"))
        elif not hasattr(components[n].config, "aggregates"):
            out.append((KEY, f"{n!r} comes before a fan-out ({', '.join(flow.graph.outputs(trunk[-1]))}): only "
                             "per-record stages and one windowed aggregate are run there; a window stage before "
                             "a fan-out is not run yet (it would run once per branch)"))
        elif i < len(trunk) - 1:
            out.append((KEY, f"{trunk[i + 1]!r} follows the aggregate {n!r} before a fan-out: only the "
                             "aggregate's windows fan out, not a window stage's rows (put it after the fan-out)"))
    return list(dict.fromkeys(out))


def _after_trunk(graph: Graph, sources: list[str], trunk: list[str], problems: list[tuple[str, str]]) -> list[Branch]:
    """The branches a trunk feeds: one per stage it feeds, and one for the sinks it feeds itself."""
    kinds = graph.kinds
    out: list[Branch] = []
    sinks = [o for o in graph.outputs(trunk[-1]) if kinds[o] == "sink"]
    for o in graph.outputs(trunk[-1]):
        if kinds[o] != "stage":
            continue
        stages = _run_from(graph, o)
        after = graph.outputs(stages[-1])
        if len(after) > 1 and any(kinds[x] == "stage" for x in after):
            problems.append((KEY, f"{stages[-1]!r} feeds {', '.join(after)}: a window's rows feeding several "
                                  "stages is not run yet (one fan-out a flow: give each its own chain from the "
                                  "source or from the trunk)"))
        out.append(Branch(list(sources), stages, [x for x in after if kinds[x] == "sink"], trunk))
    if sinks:
        out.append(Branch(list(sources), [], sinks, trunk))
    return out


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
        branches = plan_branches(flow.graph)
    except ConfigError as exc:
        problems += exc.problems
        branches = []
    for trunk in dict.fromkeys(tuple(b.trunk) for b in branches if b.trunk):
        problems += _trunk_kinds(flow, list(trunk), components) or \
            _trunk_problems(flow.graph, flow.graph.inputs(trunk[0]), list(trunk))
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
