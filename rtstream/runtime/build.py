"""Building a pipeline: settings in, its parts out (components, engine, commit rule, flusher), nothing started.

rtstream.runtime.supervisor starts and runs them. The stages split three ways: the per-record stages
at the head of the flow (folded in, or awaited per batch when one must await), an aggregate right
after them (folded incrementally as records arrive), and the window stages that see each closed window.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rtstream.config.models import RootConfig
from rtstream.config.settings import Settings
from rtstream.engine.commit_rule import CommitTracker
from rtstream.engine.window_engine import WindowEngine
from rtstream.model.policy import resolve
from rtstream.runtime.alert import AlertWebhook
from rtstream.runtime.awaiting_stages import RecordStaging
from rtstream.runtime.checkpoint_store import CheckpointStore
from rtstream.runtime.committer import Committer
from rtstream.runtime.context import Context
from rtstream.runtime.dead_letter_file import DeadLetterFile
from rtstream.runtime.flush import WindowFlusher
from rtstream.runtime.observers import WindowObserver
from rtstream.runtime.partitions import PartitionLifecycle
from rtstream.runtime.run_history import RunHistory
from rtstream.runtime.source_staging import SourceStaging
from rtstream.runtime.written_marks import WrittenMarks
from rtstream.sinks.base import Sink
from rtstream.sources.base import Source
from rtstream.stages.aggregate import AggregateStage
from rtstream.stages.base import Stage


@dataclass
class RuntimeStats:
    records_in: dict[str, int] = field(default_factory=dict)


@dataclass
class PipelineParts:
    settings: Settings
    state_dir: Path
    context: Context
    sources: list[Source]
    stages: list[Stage]
    record_stages: list[Stage]  # per-record stages at the head of the flow
    incremental: AggregateStage | None  # the aggregate folded as records arrive
    window_stages: list[Stage]  # the stages every closed window goes through
    sinks: list[Sink]
    scopes: dict[str, str]  # source -> what its checkpoints are valid for
    staging: RecordStaging | SourceStaging | None  # per-record stages run per batch (one awaits; a source's own)
    tracker: CommitTracker
    engine: WindowEngine
    committer: Committer
    checkpoints: CheckpointStore | None
    partitions: PartitionLifecycle
    dead_letters: DeadLetterFile
    stats: RuntimeStats
    history: RunHistory
    alert: AlertWebhook | None
    flusher: WindowFlusher
    # how the run is going, read and set by the loops (rtstream.runtime.loops) and the supervisor
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    exit_code: int = 0

    @property
    def stopping(self) -> bool:
        return self.stop_requested.is_set()


def build_parts(settings: Settings, observers: Sequence[WindowObserver] = ()) -> PipelineParts:
    """Every part of the pipeline `settings` describes, wired together and not yet started."""
    root = settings.root
    state_dir = Path(root.daemon.state_dir)
    tracker = CommitTracker()
    context = Context(pipeline=root.pipeline.name, state_dir=state_dir, time_mode=root.window.time,
                      extra={"search_dirs": settings.search_dirs}, worker=root.daemon.worker)
    flow = settings.flow
    sources: list[Source] = [c.cls(c.name, c.config, context) for c in settings.of(flow.sources)]
    all_stages: list[Stage] = [c.cls(c.name, c.config, context) for c in settings.of(flow.stages)]
    own = {n for names in flow.prefixes.values() for n in names}  # a source's own stages: staged per source
    stages = [s for s in all_stages if s.name not in own]
    record_stages = []
    while stages and stages[0].per_record:
        record_stages.append(stages.pop(0))
    incremental: AggregateStage | None = (
        stages.pop(0) if stages and isinstance(stages[0], AggregateStage) else None)  # type: ignore[assignment]
    window_stages = stages
    # a window join's per-record part marks each row's side before it waits in its window
    record_stages += [part for s in window_stages if (part := getattr(s, "record_part", None)) is not None]
    last_window_stage: Stage | None = window_stages[-1] if window_stages else incremental
    if isinstance(last_window_stage, AggregateStage) and last_window_stage.config.key:
        context.key_fields = [last_window_stage.config.key]
    elif isinstance(last_window_stage, AggregateStage) and root.window.type == "session":
        context.key_fields = ["key"]  # sessions of the record key: rows carry it as "key"
    if root.window.type == "count":
        context.window_fields = ["window_start", "window_id"]  # windows of one key may share a start
    sinks: list[Sink] = [c.cls(c.name, c.config, context) for c in settings.of(flow.sinks)]
    scopes = {s.name: s.checkpoint_scope() for s in sources}
    defaults = root.defaults
    policies = {c.name: resolve(defaults, c.config, "sink") for c in sinks}
    # a stage that reads a store (a lookup) halts on the store's failure, as a sink does
    policies.update({c.name: resolve(defaults, c.config, "store" if c.awaits_per_batch else "stage")
                     for c in all_stages})
    # a per-record stage that awaits (a lookup) moves every per-record stage out of the fold
    source_where = {s.name: flt for s in sources if (flt := s.where) is not None}
    staging: RecordStaging | SourceStaging | None = RecordStaging(record_stages, policies, source_where) \
        if any(s.awaits_per_batch for s in record_stages) else None
    in_fold = record_stages if staging is None else []  # the per-record stages the fold runs itself
    if flow.prefixes:  # each source's own stages staged per batch; the shared ones where they were
        named = {s.name: s for s in all_stages}
        staging = SourceStaging({src.name: RecordStaging([named[n] for n in flow.prefixes.get(src.name, [])]
                                                         + ([] if in_fold else record_stages), policies, source_where)
                                 for src in sources})
    w = root.window
    engine = WindowEngine(
        size_ms=w.size_ms, lateness_ms=round(w.lateness * 1000), idle_timeout_s=w.idle_timeout,
        time_mode=w.time, time_field=w.time_field, record_stages=in_fold,  # type: ignore[arg-type]
        aggregator=incremental.aggregator if incremental else None, tracker=tracker,
        max_window_records=root.daemon.max_window_records, hop_ms=w.hop_ms, emit_empty=w.emit_empty,
        session_gap_ms=w.gap_ms, update_interval_s=w.update_interval if w.emit == "updates" else None,
        source_where={} if staging else source_where)  # staging filters before its stages
    if w.type == "count":
        engine.use_counts(w.records)  # type: ignore[arg-type]  # set when type = "count" (config.models)
    # a sink that commits source offsets in its own transactions (Kafka exactly_once) does all commits
    committer = Committer(tracker, engine.ledger, sources, transactional=any(s.commits_source_offsets for s in sinks),
                          owned=engine.owned,
                          journal=WrittenMarks(state_dir, root.pipeline.name, scopes, root.daemon.worker.index))
    checkpoints: CheckpointStore | None = None
    if root.state.checkpoint_interval is not None:
        path = Path(root.state.path) if root.state.path else state_dir / "checkpoints.db"
        checkpoints = CheckpointStore(path, root.pipeline.name)
    partitions = PartitionLifecycle(engine, committer, checkpoints, scopes)
    context.partitions = partitions
    dead_letters, history, alert = record_keepers(root, state_dir)
    flusher = WindowFlusher(window_stages, sinks, dead_letters, engine.emitted, policies, history=history,
                            observers=observers, alert=alert, first_stage=incremental.name if incremental else None,
                            committer=committer)
    if staging is not None:  # a halted lookup is shown, and unready, like a halted sink
        staging.failing = flusher.failing
    return PipelineParts(
        settings=settings, state_dir=state_dir, context=context, sources=sources, stages=all_stages,
        record_stages=record_stages, incremental=incremental, window_stages=window_stages, sinks=sinks,
        scopes=scopes, staging=staging, tracker=tracker, engine=engine, committer=committer,
        checkpoints=checkpoints, partitions=partitions, dead_letters=dead_letters, stats=RuntimeStats(),
        history=history, alert=alert, flusher=flusher)


def record_keepers(root: RootConfig, state_dir: Path) -> tuple[DeadLetterFile, RunHistory, AlertWebhook | None]:
    """Where a pipeline keeps what happened: its dead letters, its run history, and the alert webhook."""
    dl_path = Path(root.dead_letter.path) if root.dead_letter.path else state_dir / "dead_letters.jsonl"
    history = RunHistory(state_dir / "runs.db", root.admin.history if root.admin else 100)
    alert = None
    if root.alert is not None:
        token = root.alert.bearer_token.get_secret_value() if root.alert.bearer_token else None
        alert = AlertWebhook(root.alert.url, root.pipeline.name, token, root.alert.timeout)
    return DeadLetterFile(dl_path), history, alert
