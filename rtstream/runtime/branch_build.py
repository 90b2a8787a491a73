"""Building a flow of several branches (rtstream.config.branches): the sources once, then per branch
its stages split as one chain's are (per-record stages, the windowed aggregate, window stages), its
window, its own engine and flusher over its sinks; one commit rule over all (rtstream.engine.branches).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from rtstream.config.branches import Branch, plan_branches
from rtstream.config.settings import Settings
from rtstream.config.shared_sinks import fed_by, shared_sink_keys
from rtstream.config.stage_window import branch_windows
from rtstream.engine.branches import BranchedEngine, BranchHolds
from rtstream.engine.commit_rule import CommitTracker
from rtstream.engine.emission import Emission
from rtstream.engine.window_engine import WindowEngine
from rtstream.model.policy import Policy, resolve
from rtstream.runtime.awaiting_stages import RecordStaging
from rtstream.runtime.branch_flush import BranchFlushers, FanOutFlusher, RunsOnly
from rtstream.runtime.build import PipelineParts, RuntimeStats, build_parts, record_keepers
from rtstream.runtime.checkpoint_store import CheckpointStore
from rtstream.runtime.committer import Committer
from rtstream.runtime.context import Context
from rtstream.runtime.flush import WindowFlusher
from rtstream.runtime.observers import WindowObserver
from rtstream.runtime.partitions import PartitionLifecycle
from rtstream.runtime.shared_sinks import SharedSink
from rtstream.runtime.source_staging import SourceStaging
from rtstream.runtime.written_marks import WrittenMarks
from rtstream.sinks.base import Sink
from rtstream.sources.base import Source
from rtstream.stages.aggregate import AggregateStage
from rtstream.stages.base import Stage
from rtstream.where.language import Where


def build_any(settings: Settings, observers: Sequence[WindowObserver] = ()) -> PipelineParts:
    """The parts of one chain (rtstream.runtime.build), or of several branches."""
    return build_branched(settings, observers) if settings.flow.branched else build_parts(settings, observers)


def build_branched(settings: Settings, observers: Sequence[WindowObserver] = ()) -> PipelineParts:
    root = settings.root
    state_dir = Path(root.daemon.state_dir)
    context = Context(pipeline=root.pipeline.name, state_dir=state_dir, time_mode=root.window.time,
                      extra={"search_dirs": settings.search_dirs}, worker=root.daemon.worker)
    sources: list[Source] = [c.cls(c.name, c.config, context) for c in settings.of(settings.flow.sources)]
    source_where = {s.name: flt for s in sources if (flt := s.where) is not None}
    tracker = CommitTracker()
    defaults = root.defaults
    policies: dict[str, Policy] = {}
    dead_letters, history, alert = record_keepers(root, state_dir)
    branches = plan_branches(settings.flow.graph)
    windows = branch_windows(root, settings.flow, settings.components)
    engines: list[WindowEngine] = []
    all_stages: list[Stage] = []
    all_sinks: list[Sink] = []
    window_level: list[Stage] = []
    parts: list[list[tuple[list[Stage], AggregateStage | None, list[Sink]]]] = []
    shared: dict[str, tuple[Sink, asyncio.Lock]] = {}  # a sink several branches feed: made once
    for name, keys in shared_sink_keys(root, settings.flow, settings.components).items():
        sink = settings.of([name])[0]
        counted = all(windows[i][1].type == "count" for i in fed_by(branches)[name])  # rows carry window_id
        fields = ["window_start", "window_id"] if counted else ["window_start"]
        shared[name] = (sink.cls(name, sink.config, dataclasses.replace(context, key_fields=keys, window_fields=fields)),
                        asyncio.Lock())
        all_sinks.append(shared[name][0])
    groups = _groups(branches, settings)  # branches after one aggregate share its engine (a window fan-out)
    labels: list[tuple[str, list[str]]] = []  # each engine's branches, as the status lists its open windows
    made: dict[str, Stage] = {}
    for g, idx in enumerate(groups):
        w = windows[idx[0]][1]
        head = [n for n in branches[idx[0]].trunk if not getattr(settings.components[n].cls, "per_record", False)]
        tails = []
        for i in idx:
            branch = branches[i]
            stages = [made.setdefault(c.name, c.cls(c.name, c.config, context)) for c in settings.of([*head, *branch.stages])]
            all_stages += [s for s in stages if s not in all_stages]
            rest = list(stages)
            record_stages = []
            while rest and rest[0].per_record:
                record_stages.append(rest.pop(0))
            incremental = rest.pop(0) if rest and isinstance(rest[0], AggregateStage) else None
            assert incremental is None or isinstance(incremental, AggregateStage)
            last = rest[-1] if rest else incremental
            keys = [last.config.key] if isinstance(last, AggregateStage) and last.config.key else \
                ["key"] if isinstance(last, AggregateStage) and w.type == "session" else []
            own = dataclasses.replace(context, key_fields=keys,  # this branch's sinks upsert by its own key
                                      window_fields=["window_start", "window_id"] if w.type == "count"
                                      else ["window_start"])
            sinks: list[Sink] = [SharedSink(shared[c.name][0], branch.name, shared[c.name][1]) if c.name in shared
                                 else c.cls(c.name, c.config, own) for c in settings.of(branch.sinks)]
            all_sinks += [s for s in sinks if not isinstance(s, SharedSink)]
            window_level += [s for s in ([incremental] if incremental else []) + rest if s not in window_level]
            policies.update({s.name: resolve(defaults, s.config, "sink") for s in sinks})
            policies.update({s.name: resolve(defaults, s.config, "stage") for s in stages})
            tails.append((rest, incremental, sinks))
        assert incremental is None or isinstance(incremental, AggregateStage)  # the group's one aggregate
        engine = WindowEngine(
            size_ms=w.size_ms, lateness_ms=round(w.lateness * 1000), idle_timeout_s=w.idle_timeout,
            time_mode=w.time, time_field=w.time_field, record_stages=record_stages,  # type: ignore[arg-type]
            aggregator=incremental.aggregator if incremental else None, tracker=BranchHolds(tracker, g),
            max_window_records=root.daemon.max_window_records, hop_ms=w.hop_ms, emit_empty=w.emit_empty,
            session_gap_ms=w.gap_ms, update_interval_s=w.update_interval if w.emit == "updates" else None,
            source_where=source_where)
        if w.type == "count":
            engine.use_counts(w.records)  # type: ignore[arg-type]
        engines.append(engine)
        parts.append(tails)
        labels.append((", ".join(branches[i].name for i in idx),
                       list(dict.fromkeys([*head, *(x for i in idx for x in [*branches[i].stages, *branches[i].sinks])]))))
    staging = _trunk_staging(branches, settings, context, sources, source_where, policies)
    if staging is not None:
        all_stages += [s for st in staging.by_source.values() for s in st.stages if s not in all_stages]
        for e in engines:
            e.source_where = {}  # the staging filters by each source's `where` before the trunk
    engine_set = BranchedEngine(engines, tracker, BranchHolds(tracker, len(engines)))
    engine_set.labels = labels  # type: ignore[attr-defined]
    scopes = {s.name: s.checkpoint_scope() for s in sources}
    committer = Committer(tracker, engine_set.ledger, sources, transactional=False, owned=engine_set.owned,
                          journal=WrittenMarks(state_dir, root.pipeline.name, scopes, root.daemon.worker.index))
    flushers: list[WindowFlusher | FanOutFlusher] = []
    for tails in parts:
        # a window fan-out's window is one window to the metrics: told by its first branch only
        subs = [WindowFlusher(rest, sinks, dead_letters, engine_set.emitted if len(tails) == 1 else _written,
                              policies, history=history if k == 0 or history is None else RunsOnly(history),  # type: ignore[arg-type]
                              observers=observers if k == 0 else (), alert=alert,
                              first_stage=inc.name if inc else None, committer=committer)
                for k, (rest, inc, sinks) in enumerate(tails)]
        flushers.append(subs[0] if len(subs) == 1 else FanOutFlusher(subs, engine_set.emitted))
    flusher = BranchFlushers(flushers, policies)
    checkpoints: CheckpointStore | None = None
    if root.state.checkpoint_interval is not None:  # always, for branches (rtstream.config.branches)
        path = Path(root.state.path) if root.state.path else state_dir / "checkpoints.db"
        checkpoints = CheckpointStore(path, root.pipeline.name)
    partitions = PartitionLifecycle(engine_set, committer, checkpoints, scopes)  # type: ignore[arg-type]
    context.partitions = partitions
    return PipelineParts(
        settings=settings, state_dir=state_dir, context=context, sources=sources, stages=all_stages,
        record_stages=[], incremental=None, window_stages=window_level, sinks=all_sinks, scopes=scopes,
        staging=staging, tracker=tracker, engine=engine_set, committer=committer,  # type: ignore[arg-type]
        checkpoints=checkpoints, partitions=partitions, dead_letters=dead_letters, stats=RuntimeStats(),
        history=history, alert=alert, flusher=flusher)  # type: ignore[arg-type]


def _trunk_staging(branches: list[Branch], settings: Settings, context: Context, sources: list[Source],
                   source_where: dict[str, Where], policies: dict[str, Policy]) -> SourceStaging | None:
    """The per-record stages before a fan-out (`a >> clean >> [x, y]`, rtstream.config.branches), run
    once per batch of their sources before every branch folds it; None when no branch has any."""
    trunks = {tuple(n for n in b.trunk if getattr(settings.components[n].cls, "per_record", False)): b.sources for b in branches}
    trunks.pop((), None)
    if not trunks:
        return None
    made: dict[str, Stage] = {}
    by_source: dict[str, list[Stage]] = {}
    for trunk, srcs in trunks.items():
        for c in settings.of(list(trunk)):
            made.setdefault(c.name, c.cls(c.name, c.config, context))
            policies[c.name] = resolve(settings.root.defaults, c.config, "stage")
        for src in srcs:
            by_source[src] = [made[n] for n in trunk]
    return SourceStaging({s.name: RecordStaging(by_source.get(s.name, []), policies, source_where) for s in sources})


def _groups(branches: list[Branch], settings: Settings) -> list[list[int]]:
    """Branch indexes sharing one window engine: those after the same aggregate before a fan-out."""
    groups: list[list[int]] = []
    by_trunk: dict[tuple[str, ...], int] = {}
    for i, b in enumerate(branches):
        if any(not getattr(settings.components[n].cls, "per_record", False) for n in b.trunk):
            if tuple(b.trunk) in by_trunk:
                groups[by_trunk[tuple(b.trunk)]].append(i)
                continue
            by_trunk[tuple(b.trunk)] = len(groups)
        groups.append([i])
    return groups


def _written(em: Emission) -> None:
    """One branch of a window fan-out wrote its copy: the fan-out releases the window once all did."""
