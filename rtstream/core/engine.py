"""The batch loop: decode, per-record stages, event time, window assignment, folding, closing.

Everything here is synchronous CPU work on whole batches: no await and no log call per record.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from rtstream.core.commit import CommitTracker, Mark, PartitionKey
from rtstream.core.deadletter import DeadLetter
from rtstream.core.record import Batch, Window, iso_utc
from rtstream.errors import DecodeError
from rtstream.windows.aggregates import Aggregator
from rtstream.windows.assign import TumblingAssigner
from rtstream.windows.clock import MAX_MS, MIN_MS, epoch_ms
from rtstream.windows.sessions import Session, SessionStore
from rtstream.windows.state import Pane, WindowStore
from rtstream.windows.watermark import NEVER, WatermarkTracker

if TYPE_CHECKING:
    from rtstream.stages.map import MapStage


@dataclass(slots=True)
class Emission:
    """A closed window on its way to the stages and sinks, and the partitions it holds back."""

    id: int
    window: Window
    rows: list[dict[str, Any]]
    partitions: list[tuple[PartitionKey, int]]  # (partition, first offset in this window)
    marks: dict[PartitionKey, int] | None = None  # once written, these partitions are written up to here
    closed_at: float = field(default_factory=time.monotonic)  # when the watermark let it go
    tag_final: bool = False  # emit = "updates": every row says whether it is final


class WindowEngine:
    def __init__(self, *, size_ms: int, lateness_ms: int, idle_timeout_s: float, time_mode: str,
                 time_field: str, record_stages: list[MapStage], aggregator: Aggregator | None,
                 tracker: CommitTracker, max_window_records: int, hop_ms: int | None = None,
                 emit_empty: bool = False, session_gap_ms: int | None = None,
                 update_interval_s: float | None = None):
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
        self.max_window_records = max_window_records
        self.store = WindowStore()
        self.sessions = SessionStore(session_gap_ms, aggregator.merge_into if aggregator else None) \
            if session_gap_ms else None
        self._emitted_upto: dict[PartitionKey, int] = {}
        self._epochs: dict[PartitionKey, int] = {}
        self._written: dict[PartitionKey, int] = {}  # windows ending by here are written, per partition
        self._seeds: dict[PartitionKey, Mark] = {}
        self._inflight = 0
        self._pending: dict[int, Emission] = {}  # final emissions handed to the sinks, not yet written
        self._restored: list[Emission] = []  # pending emissions of a restored checkpoint, to be flushed again
        self._unreleased: list[Emission] = []  # written, still holding commits until their close is written
        self._last_emission: Emission | None = None
        self._next_id = 0
        self.replayed_done = 0
        self.records_in = 0
        self.skipped = 0
        self.time_range: tuple[int, int] | None = None  # a backfill keeps only [from, to)

    # --- partitions -------------------------------------------------------------------------
    def assign(self, pk: PartitionKey, now: float, epoch: int = 0) -> None:
        self._epochs[pk] = epoch
        self.watermark.assign(pk, now)

    def seed(self, pk: PartitionKey, mark: Mark) -> None:
        """Resume a partition from a commit that carried `mark` (see rtstream.core.commit.Mark)."""
        self._seeds[pk] = mark
        self._written[pk] = max(self._written.get(pk, NEVER), mark[0])
        self._emitted_upto[pk] = max(self._emitted_upto.get(pk, NEVER), mark[0])

    def commit_mark(self, pk: PartitionKey) -> Mark | None:
        written, nxt = self._written.get(pk), self.tracker.next(pk)
        return Mark(written, nxt) if written is not None and nxt is not None else None

    def revoke(self, pk: PartitionKey) -> None:
        """Drop a partition's open state without emitting it; its next owner replays it."""
        self._epochs.pop(pk, None)
        self._written.pop(pk, None)
        self._seeds.pop(pk, None)
        for start in self.store.drop(pk):
            self.tracker.release(pk, ("open", start))
        if self.sessions is not None:
            self.sessions.drop(pk)
        self.watermark.forget(pk)
        self.tracker.drop(pk)
        self._emitted_upto.pop(pk, None)

    def finish(self, pk: PartitionKey) -> None:
        """A finite partition has nothing more: it stops holding the watermark back."""
        self.watermark.forget(pk)

    def open_windows(self) -> int:
        return self.sessions.open_count() if self.sessions is not None else self.store.open_windows()

    def partitions(self, source: str) -> list[PartitionKey]:
        return [pk for pk in self._epochs if pk[0] == source]

    def owns(self, batch: Batch) -> bool:
        return self._epochs.get((batch.source, batch.partition)) == batch.epoch

    # --- the batch loop ---------------------------------------------------------------------
    def process(self, batch: Batch, now: float) -> list[DeadLetter]:
        """Fold one batch into open windows; returns the records that could not be used."""
        pk = (batch.source, batch.partition)
        panes = self.store.panes_of(pk)
        closed_upto = self._emitted_upto.get(pk, NEVER)
        size = self.size_ms
        agg = self.aggregator
        table_mode = agg is not None
        update = agg.update if agg is not None else None
        event_time = self.time_mode == "event"
        tf = self.time_field
        maps = self.record_stages
        loads = orjson.loads
        tracker = self.tracker
        sessions = self.sessions
        dead: list[DeadLetter] = []
        max_ts = NEVER
        time_range = self.time_range
        seed = self._seeds.get(pk)
        hop, hop_n = self.hop_ms, self.size_ms // self.hop_ms

        def reject(reason: str, detail: str, rec: Any, value: Any, stage: str | None = None,
                   window: tuple[int, int] | None = None) -> None:
            dead.append(DeadLetter(reason, detail, batch.source, batch.partition, rec.offset, stage, window, value))

        decoded = batch.decoded
        for rec in batch.records:
            value = rec.value
            if not decoded:
                try:
                    value = loads(value)
                except orjson.JSONDecodeError as exc:
                    reject("decode", f"invalid JSON: {exc}", rec, rec.value)
                    continue
            if value.__class__ is not dict:
                reject("decode", f"expected a JSON object, got {type(value).__name__}", rec, rec.value)
                continue
            values = self._apply_maps([value], rec, reject) if maps else (value,)
            for v in values:
                if event_time:
                    t = v.get(tf)
                    if t.__class__ is int and 100_000_000_000 <= t < 100_000_000_000_000:
                        ts = t
                    else:
                        try:
                            ts = epoch_ms(t) if t is not None else _missing(tf)
                        except DecodeError as exc:
                            reject("no_time", str(exc), rec, v)
                            continue
                else:
                    if rec.ts is None or not MIN_MS <= rec.ts <= MAX_MS:
                        reject("no_time", f"the source gave this record no usable timestamp ({rec.ts!r})", rec, v)
                        continue
                    ts = rec.ts
                if time_range is not None and not (time_range[0] <= ts < time_range[1]):
                    self.skipped += 1
                    continue
                if sessions is not None:
                    if self._join_session(pk, batch, rec, v, ts, closed_upto, seed, reject) and ts > max_ts:
                        max_ts = ts
                    continue
                if hop_n == 1:
                    starts: Any = (ts - ts % size,)
                else:
                    last = ts - ts % hop
                    starts = [last - k * hop for k in range(hop_n)]  # every window holding ts
                joined = False
                late_start = None
                for start in starts:
                    if start + size <= closed_upto:
                        if not (seed is not None and rec.offset < seed[1] and start + size <= seed[0]):
                            late_start = start
                        # else: counted in a window written before the restart
                        continue
                    pane = panes.get(start)
                    if pane is None:
                        pane = panes[start] = Pane(rec.offset, {} if table_mode else None)
                        tracker.hold(pk, ("open", start), rec.offset)
                    if table_mode:
                        why = update(pane.table, v, ts)  # type: ignore[misc, arg-type]
                        if why is not None:
                            reject("invalid", why, rec, v)
                            if not pane.table:
                                del panes[start]
                                tracker.release(pk, ("open", start))
                            break
                    else:
                        buffered = self.store.buffered.get(start, 0)
                        if buffered >= self.max_window_records:
                            reject("window_full", f"window already holds max_window_records = "
                                   f"{self.max_window_records} records", rec, v, window=(start, start + size))
                            if not pane.records:
                                del panes[start]
                                tracker.release(pk, ("open", start))
                            break
                        self.store.buffered[start] = buffered + 1
                        pane.records.append((ts, v))  # type: ignore[union-attr]
                    pane.count += 1
                    joined = True
                if joined:
                    if ts > max_ts:
                        max_ts = ts
                elif late_start is not None:
                    reject("late", f"window {iso_utc(late_start)} was already emitted", rec, v,
                           window=(late_start, late_start + size))
                elif seed is not None:
                    self.replayed_done += 1
        self.records_in += len(batch.records)
        if max_ts != NEVER:
            self.watermark.observe(pk, max_ts, now)
        return dead

    def _join_session(self, pk: PartitionKey, batch: Batch, rec: Any, v: dict[str, Any], ts: int,
                      closed_upto: int, seed: Mark | None, reject: Any) -> bool:
        """Fold one record into its key's session; False when it was refused."""
        store = self.sessions
        assert store is not None
        agg = self.aggregator
        if agg is not None and agg.key is not None:
            key = v.get(agg.key)
        elif batch.key_field is not None:
            key = v.get(batch.key_field)
        else:
            key = rec.key.decode("utf-8", "replace") if isinstance(rec.key, bytes) else rec.key
        if key.__class__ is dict or key.__class__ is list:
            reject("invalid", "a session key must be a scalar", rec, v)
            return False
        # Below the seed, the record was read before a restart: it rebuilds its session whatever the
        # watermark says; sessions that were written before are dropped when they close.
        replaying = seed is not None and rec.offset < seed[1]
        if ts < closed_upto and not replaying:
            reject("late", f"sessions before {iso_utc(closed_upto)} were already emitted", rec, v,
                   window=(ts, ts + store.gap))
            return False
        hits = store.overlapping(pk, key, ts)
        if agg is not None:
            table = hits[0].table if hits else {}
            why = agg.update(table, v, ts)  # type: ignore[arg-type]
            if why is not None:
                reject("invalid", why, rec, v)
                return False
        elif hits and len(hits[0].records or ()) >= self.max_window_records:  # type: ignore[arg-type]
            reject("window_full", f"session already holds max_window_records = {self.max_window_records} records",
                   rec, v, window=(hits[0].start, hits[0].end(store.gap)))
            return False
        if len(hits) == 1:  # the common case: stretch it; offsets only grow, so its hold stands
            s = hits[0]
            if ts > s.last:
                s.last = ts
            elif ts < s.start:
                s.start = ts
        elif hits:
            s, folded = store.extend(pk, hits, ts)
            for f in folded:
                self.tracker.release(pk, ("session", f.id))
            self.tracker.hold(pk, ("session", s.id), s.min_offset)
        else:
            s = store.open(pk, key, ts, rec.offset, table if agg is not None else None)
            self.tracker.hold(pk, ("session", s.id), rec.offset)
        if s.records is not None:
            s.records.append((ts, v))
        s.count += 1
        return True

    def _apply_maps(self, values: list[dict[str, Any]], rec: Any, reject: Any) -> list[dict[str, Any]]:
        for stage in self.record_stages:
            out: list[dict[str, Any]] = []
            for v in values:
                try:
                    out.extend(stage.apply(v))
                except Exception as exc:  # noqa: BLE001 - a user function's failure dead-letters its record
                    reject("stage_error", f"{type(exc).__name__}: {exc}", rec, v, stage=stage.name)
            values = out
        return values

    # --- closing ----------------------------------------------------------------------------
    def close_ready(self, now: float, wall_ms: int, caught_up: bool = True) -> list[Emission]:
        """Emit every window the watermark has passed (each partition's share by its own mark)."""
        wm = self.watermark
        wm.advance(now, wall_ms, caught_up)
        marks = {}
        for pk in self._epochs:
            if wm.has_delivered(pk):
                marks[pk] = self._emitted_upto[pk] = max(self._emitted_upto.get(pk, NEVER), wm.mark(pk))
        if self.sessions is not None:
            emissions = self._emit_sessions(self.sessions.take(wm.current, wm.mark))
        else:
            taken = self.store.take(wm.mark, self.size_ms)
            emissions = [self._emit(start, panes) for start, panes in taken.items()]
        if self.emit_empty:
            emissions = self._with_empty(emissions, wm.current)
        if self.update_interval_s is not None:
            for em in emissions:
                self._updated_counts.pop(em.window.start_ms, None)
            if now - self._last_update >= self.update_interval_s:
                self._last_update = now
                emissions += self._running()
        self._settle(marks, emissions)
        return emissions

    def _running(self) -> list[Emission]:
        """The running result of every open window that took records since its last one."""
        out = []
        for start, panes in self.store.snapshot().items():
            count = sum(p.count for _, p in panes)
            if self._updated_counts.get(start) == count:
                continue
            self._updated_counts[start] = count
            window = Window(start, self.assigner.end(start), input_count=count, final=False)
            if self.aggregator is not None:
                table = self.aggregator.new_table()
                for _, pane in panes:
                    self.aggregator.merge_into(table, pane.table)  # type: ignore[arg-type]
                rows = self.aggregator.rows(table, window.start_iso, window.end_iso)
            else:
                rows = [v for _, v in sorted((r for _, p in panes for r in p.records or ()), key=lambda r: r[0])]
            self._inflight += 1
            self._next_id += 1
            em = Emission(self._next_id, window, rows, [], tag_final=True)
            self._last_emission = em
            out.append(em)
        return out

    def _with_empty(self, emissions: list[Emission], mark: int) -> list[Emission]:
        """Every window of the schedule up to the watermark, with a run for those no record reached
        (the cron job's "the 12:05 run happened and saw nothing")."""
        had = {em.window.start_ms for em in emissions}
        if self._empty_from is None:
            if not had:
                return emissions  # the schedule starts with the first window that saw data
            self._empty_from = min(had)
        out = list(emissions)
        start = self._empty_from
        while start + self.size_ms <= mark:
            if start not in had:
                out.append(self._emit(start, []))
            start += self.hop_ms
        self._empty_from = max(start, self._empty_from)
        out.sort(key=lambda em: em.window.start_ms)
        return out

    def _settle(self, marks: dict[PartitionKey, int], emissions: list[Emission]) -> None:
        """The marks of a close hold once every emission up to it is written (flushes go in order)."""
        if emissions:
            emissions[-1].marks = marks
        elif self._inflight and self._last_emission is not None:
            self._last_emission.marks = marks
        else:
            for pk, m in marks.items():
                self._written[pk] = max(self._written.get(pk, NEVER), m)

    def close_all(self) -> list[Emission]:
        """End of a finite run: emit everything still open; once written, every window is."""
        if self.sessions is not None:
            emissions = self._emit_sessions(self.sessions.take_all())
        else:
            emissions = [self._emit(start, panes) for start, panes in self.store.take(None, self.size_ms).items()]
        self._settle({pk: MAX_MS for pk in self._epochs}, emissions)
        return emissions

    def _emit_sessions(self, groups: list[list[tuple[PartitionKey, Session]]]) -> list[Emission]:
        out = []
        gap = self.size_ms if self.sessions is None else self.sessions.gap
        for group in groups:
            keep = []
            for pk, s in group:
                seed = self._seeds.get(pk)
                if seed is not None and s.end(gap) <= seed[0]:  # written before the restart
                    self.tracker.release(pk, ("session", s.id))
                    self.replayed_done += s.count
                else:
                    keep.append((pk, s))
            if keep:
                start = min(s.start for _, s in keep)
                end = max(s.end(gap) for _, s in keep)
                out.append(self._emit(start, keep, Window(start, end, key=keep[0][1].key)))
        return out

    def _emit(self, start: int, panes: Sequence[tuple[Hashable, Any]], window: Window | None = None) -> Emission:
        """One closed window from its partitions' shares (panes, or a key's sessions)."""
        self._next_id += 1
        eid = self._next_id
        if window is None:
            window = Window(start, self.assigner.end(start))
        window.input_count = sum(pane.count for _, pane in panes)
        parts = []
        for pk, pane in panes:
            self.tracker.hold(pk, ("emit", eid), pane.min_offset)  # type: ignore[arg-type]
            holder = ("session", pane.id) if isinstance(pane, Session) else ("open", start)
            self.tracker.release(pk, holder)  # type: ignore[arg-type]
            parts.append((pk, pane.min_offset))
        if self.aggregator is not None:
            table = panes[0][1].table if panes else self.aggregator.new_table()
            assert table is not None
            for _, pane in panes[1:]:
                self.aggregator.merge_into(table, pane.table)  # type: ignore[arg-type]
            if not table and self.aggregator.key is None:
                table = self.aggregator.zero_table()  # a keyless window that saw nothing still has its row
            rows = self.aggregator.rows(table, window.start_iso, window.end_iso)
            if window.key is not None and self.aggregator.key is None:
                for row in rows:
                    row["key"] = window.key  # a session of the source's record key
        else:
            buffered = [r for _, pane in panes for r in pane.records]  # type: ignore[union-attr]
            buffered.sort(key=lambda r: r[0])
            rows = [v for _, v in buffered]
        em = Emission(eid, window, rows, parts, tag_final=self.update_interval_s is not None)  # type: ignore[arg-type]
        self._inflight += 1
        self._pending[eid] = em
        self._last_emission = em
        return em

    def commit_after(self, window: Window) -> tuple[dict[PartitionKey, int], dict[PartitionKey, Mark]]:
        """The positions (and marks) every owned partition can commit once `window` is written: for a
        sink that commits them in the same transaction as the window's rows. Flushes go in order, so
        every window before this one is written by then."""
        em = next((e for e in self._pending.values() if e.window is window), None)
        if em is None or em.marks is None:
            return {}, {}  # a running result, or a window whose close is not all written with it
        released = {("emit", e.id) for e in (*self._unreleased, em)}
        positions, marks = {}, {}
        for pk in self._epochs:
            pos, nxt = self.tracker.safe(pk, released), self.tracker.next(pk)
            if pos is None or nxt is None:
                continue
            positions[pk] = pos
            written = max(self._written.get(pk, NEVER), (em.marks or {}).get(pk, NEVER))
            if written != NEVER:
                marks[pk] = Mark(written, nxt)
        return positions, marks

    def emitted(self, emission: Emission) -> None:
        """The sinks have the window. Its partitions stop holding commits back once every window of its
        close is written too (the one carrying the close's marks): a commit past its records before
        then would carry an older mark, and a replay from it would emit the window again in pieces."""
        self._inflight -= 1
        self._pending.pop(emission.id, None)
        if emission.marks is None:
            self._unreleased.append(emission)
            return
        for em in (*self._unreleased, emission):
            for pk, _ in em.partitions:
                self.tracker.release(pk, ("emit", em.id))
        self._unreleased = []
        for pk, m in emission.marks.items():
            if pk in self._epochs:
                self._written[pk] = max(self._written.get(pk, NEVER), m)


    # --- checkpoints ------------------------------------------------------------------------
    def owned(self) -> list[PartitionKey]:
        return list(self._epochs)

    def snapshot(self, pk: PartitionKey) -> tuple[int, bytes] | None:
        """Everything needed to resume `pk` from the position returned, without replaying what came
        before it: its open windows, its marks, and the closed windows holding it that the sinks
        do not have yet (they are written again on restore; sinks are idempotent per window)."""
        position = self.tracker.next(pk)
        if position is None:
            return None  # nothing read yet: there is nothing to save
        sessions = self.sessions.of(pk) if self.sessions is not None else []
        state = {
            "panes": self.store.panes_of(pk), "sessions": sessions,
            "written": self._written.get(pk), "emitted_upto": self._emitted_upto.get(pk), "seed": self._seeds.get(pk),
            "max_ts": self.watermark.max_ts(pk), "mark": self.watermark.marks.get(pk),
            # written windows still holding commits go too: restored, they hold them again until the
            # next close is written (writing them again is harmless, sinks are idempotent)
            "pending": [(em.window, em.rows, off) for em in (*self._unreleased, *self._pending.values())
                        for p, off in em.partitions if p == pk],
        }
        return position, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, pk: PartitionKey, position: int, blob: bytes, now: float) -> int:
        """Resume `pk` from a snapshot (see `snapshot`); returns how many open windows it brought back."""
        state = pickle.loads(blob)  # noqa: S301 - our own file under state_dir, see rtstream.core.checkpoint
        tracker = self.tracker
        panes = self.store.panes_of(pk)
        for start, pane in state["panes"].items():
            panes[start] = pane
            tracker.hold(pk, ("open", start), pane.min_offset)
            if pane.records is not None:
                self.store.buffered[start] = self.store.buffered.get(start, 0) + len(pane.records)
        for s in state["sessions"]:
            assert self.sessions is not None, "a session checkpoint restored into windows of another type"
            self.sessions.adopt(pk, s)
            tracker.hold(pk, ("session", s.id), s.min_offset)
        # The snapshot's marks replace any from the commit: a commit made after the snapshot would skip
        # records the restored windows still need, and those windows are written again whole.
        for name, marks in (("written", self._written), ("emitted_upto", self._emitted_upto), ("seed", self._seeds)):
            if state[name] is not None:
                marks[pk] = state[name]  # type: ignore[index]
            else:
                marks.pop(pk, None)  # type: ignore[attr-defined]
        if state["max_ts"] is not None:
            self.watermark.observe(pk, state["max_ts"], now)
        if state["mark"] is not None:
            self.watermark.marks[pk] = state["mark"]
        tracker.processed(pk, position)
        for window, rows, offset in state["pending"]:
            again = next((em for em in self._pending.values() if em.window.id == window.id), None)
            if again is None:  # the same window may come back with each of its partitions: written once
                self._next_id += 1
                again = Emission(self._next_id, window, rows, [], tag_final=self.update_interval_s is not None)
                self._inflight += 1
                self._pending[again.id] = again
                self._restored.append(again)
                self._last_emission = again
            again.partitions.append((pk, offset))
            tracker.hold(pk, ("emit", again.id), offset)
        return len(state["panes"]) + len(state["sessions"])

    def take_restored(self) -> list[Emission]:
        out, self._restored = self._restored, []
        return out

def _missing(field: str) -> int:
    raise DecodeError(f"missing time field {field!r}")
