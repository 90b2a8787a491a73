"""Building a flow of several branches (rtstream.config.branches): the sources once, then per branch
its stages split as one chain's are (per-record stages, the windowed aggregate, window stages), its
window, its own engine and flusher over its sinks; one commit rule over all (rtstream.engine.branches).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from rtstream.config.branches import plan_branches
from rtstream.config.settings import Settings
from rtstream.config.stage_window import branch_windows
from rtstream.engine.branches import BranchedEngine, BranchHolds
from rtstream.engine.commit_rule import CommitTracker
from rtstream.engine.window_engine import WindowEngine
from rtstream.model.policy import Policy, resolve
from rtstream.runtime.branch_flush import BranchFlushers
from rtstream.runtime.build import PipelineParts, RuntimeStats, build_parts, record_keepers
from rtstream.runtime.checkpoint_store import CheckpointStore
from rtstream.runtime.committer import Committer
from rtstream.runtime.context import Context
from rtstream.runtime.flush import WindowFlusher
from rtstream.runtime.observers import WindowObserver
from rtstream.runtime.partitions import PartitionLifecycle
from rtstream.sinks.base import Sink
from rtstream.sources.base import Source
from rtstream.stages.aggregate import AggregateStage
from rtstream.stages.base import Stage


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
    parts: list[tuple[list[Stage], AggregateStage | None, list[Sink]]] = []
    for b, (branch, (_, w)) in enumerate(zip(branches, windows, strict=True)):
        stages: list[Stage] = [c.cls(c.name, c.config, context) for c in settings.of(branch.stages)]
        all_stages += stages
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
        sinks: list[Sink] = [c.cls(c.name, c.config, own) for c in settings.of(branch.sinks)]
        all_sinks += sinks
        window_level += ([incremental] if incremental else []) + rest
        policies.update({s.name: resolve(defaults, s.config, "sink") for s in sinks})
        policies.update({s.name: resolve(defaults, s.config, "stage") for s in stages})
        engine = WindowEngine(
            size_ms=w.size_ms, lateness_ms=round(w.lateness * 1000), idle_timeout_s=w.idle_timeout,
            time_mode=w.time, time_field=w.time_field, record_stages=record_stages,  # type: ignore[arg-type]
            aggregator=incremental.aggregator if incremental else None, tracker=BranchHolds(tracker, b),
            max_window_records=root.daemon.max_window_records, hop_ms=w.hop_ms, emit_empty=w.emit_empty,
            session_gap_ms=w.gap_ms, update_interval_s=w.update_interval if w.emit == "updates" else None,
            source_where=source_where)
        if w.type == "count":
            engine.use_counts(w.records)  # type: ignore[arg-type]
        engines.append(engine)
        parts.append((rest, incremental, sinks))
    engine_set = BranchedEngine(engines, tracker, BranchHolds(tracker, len(engines)))
    committer = Committer(tracker, engine_set.ledger, sources, transactional=False, owned=engine_set.owned)
    flushers = [WindowFlusher(rest, sinks, dead_letters, engine_set.emitted, policies, history=history,
                              observers=observers, alert=alert, first_stage=inc.name if inc else None,
                              committer=committer) for rest, inc, sinks in parts]
    flusher = BranchFlushers(flushers, policies)
    checkpoints: CheckpointStore | None = None
    if root.state.checkpoint_interval is not None:  # always, for branches (rtstream.config.branches)
        path = Path(root.state.path) if root.state.path else state_dir / "checkpoints.db"
        checkpoints = CheckpointStore(path, root.pipeline.name)
    scopes = {s.name: s.checkpoint_scope() for s in sources}
    partitions = PartitionLifecycle(engine_set, committer, checkpoints, scopes)  # type: ignore[arg-type]
    context.partitions = partitions
    return PipelineParts(
        settings=settings, state_dir=state_dir, context=context, sources=sources, stages=all_stages,
        record_stages=[], incremental=None, window_stages=window_level, sinks=all_sinks, scopes=scopes,
        staging=None, tracker=tracker, engine=engine_set, committer=committer,  # type: ignore[arg-type]
        checkpoints=checkpoints, partitions=partitions, dead_letters=dead_letters, stats=RuntimeStats(),
        history=history, alert=alert, flusher=flusher)  # type: ignore[arg-type]
