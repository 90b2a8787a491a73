"""The state every part of the window engine shares: configuration, open windows, partitions.

The engine's jobs live in their own modules over this one state: folding batches into windows
(rtstream.engine.fold), closing and emitting windows (rtstream.engine.closing), and checkpoint
snapshots (rtstream.engine.partition_snapshot). Delivery bookkeeping is rtstream.engine.commit_rule's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from rtstream.engine.commit_rule import CommitTracker, DeliveryLedger
from rtstream.engine.stateful import bind_steps
from rtstream.model.positions import Mark, PartitionKey
from rtstream.where.language import Where
from rtstream.windows.aggregates import Aggregator
from rtstream.windows.assign import TumblingAssigner
from rtstream.windows.sessions import SessionStore
from rtstream.windows.store import WindowStore
from rtstream.windows.watermark import WatermarkTracker

if TYPE_CHECKING:
    from rtstream.engine.emission import Emission


class RecordStep(Protocol):
    """A per-record stage as the fold calls it (a `map` stage): one value in, zero or more out; a raise
    dead-letters that record only."""

    name: str

    def apply(self, value: dict[str, Any]) -> list[dict[str, Any]]: ...


class EngineState:
    def __init__(self, *, size_ms: int, lateness_ms: int, idle_timeout_s: float, time_mode: str,
                 time_field: str, record_stages: list[RecordStep], aggregator: Aggregator | None,
                 tracker: CommitTracker, max_window_records: int, hop_ms: int | None = None,
                 emit_empty: bool = False, session_gap_ms: int | None = None,
                 update_interval_s: float | None = None, source_where: Mapping[str, Where] | None = None):
        self.assigner = TumblingAssigner(size_ms)
        self.size_ms = size_ms
        self.hop_ms = hop_ms or size_ms  # tumbling: one window per record; hopping: size / hop windows
        self.emit_empty = emit_empty
        self.update_interval_s = update_interval_s  # emit = "updates": running results this often
        self._last_update = 0.0
        self._updated_counts: dict[int, int] = {}  # window start -> input count at its last running row
        self._empty_from: int | None = None  # the first window start not yet emitted, for emit_empty
        self.watermark = WatermarkTracker(lateness_ms, idle_timeout_s)
        self.time_mode = time_mode
        self.time_field = time_field
        self.record_stages = record_stages
        self.aggregator = aggregator
        self.tracker = tracker
        self.ledger = DeliveryLedger(tracker)
        self.max_window_records = max_window_records
        self.store = WindowStore()
        self.sessions = SessionStore(session_gap_ms, aggregator.merge_into if aggregator else None) \
            if session_gap_ms else None
        self._emitted_upto: dict[PartitionKey, int] = {}
        self._epochs: dict[PartitionKey, int] = {}
        self._seeds: dict[PartitionKey, Mark] = {}
        self._restored: list[Emission] = []  # pending emissions of a restored checkpoint, to be flushed again
        self.replayed_done = 0
        self.records_in = 0
        self.skipped = 0
        self.time_range: tuple[int, int] | None = None  # a backfill keeps only [from, to)
        # source name -> its compiled `where`: records it does not hold for are skipped right after
        # decoding (read and committed like the others, never dead-lettered)
        self.source_where: Mapping[str, Where] = source_where or {}
        self.filtered_out = 0  # records a source's `where` skipped
        # the state of joins and keyed stages (rtstream.engine.stateful): each per-record stage with a
        # `stateful_step` is folded through it, told the record's partition and position
        self.steps, self.tombstones, self.input_time = bind_steps(self, record_stages)
        self.released_dead: list[Any] = []  # refusals among rows a step let go (rtstream.engine.released)
        self.dead_taken: list[Any] = []  # those taken (take_dead), not yet written (dead_written)
