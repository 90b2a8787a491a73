"""Folding a batch into open windows: decode, the source's `where`, per-record stages, event time,
assignment, update.

Synchronous CPU work on whole batches: no await and no log call per record. A record that cannot be
used comes back as a dead letter with its reason and position; nothing here raises for one record.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

import orjson

from rtstream.engine.commit_rule import Hold, HoldKind
from rtstream.engine.dead_letter import DeadLetter
from rtstream.engine.decode import decoder_for, not_an_object
from rtstream.engine.short_paths import short_paths
from rtstream.engine.state import EngineState
from rtstream.model.batch import Batch
from rtstream.model.errors import DecodeError
from rtstream.model.positions import Mark, PartitionKey
from rtstream.model.window import iso_utc
from rtstream.windows.clock import MAX_MS, MIN_MS, epoch_ms
from rtstream.windows.store import Pane
from rtstream.windows.watermark import NEVER


class BatchPass:
    """What folding one batch keeps at hand: its partition's open panes and marks, and its refusals."""

    __slots__ = ("batch", "pk", "panes", "closed_upto", "seed", "dead")

    def __init__(self, batch: Batch, pk: PartitionKey, panes: dict[int, Pane], closed_upto: int, seed: Mark | None):
        self.batch = batch
        self.pk = pk
        self.panes = panes
        self.closed_upto = closed_upto  # windows ending by here were emitted for this partition
        self.seed = seed  # the mark this partition resumed from, if any
        self.dead: list[DeadLetter] = []

    def reject(self, reason: str, detail: str, rec: Any, value: Any, stage: str | None = None,
               window: tuple[int, int] | None = None) -> None:
        b = self.batch
        self.dead.append(DeadLetter(reason, detail, b.source, b.partition, rec.offset, stage, window, value))


class BatchFold(EngineState):

    def process(self, batch: Batch, now: float) -> list[DeadLetter]:
        """Fold one batch into open windows; returns the records that could not be used.

        Per record: decode, the source's `where`, the per-record stages, then for each value the
        short path (below), or its time (`_time_of`) and its windows (`_fold_value`)."""
        pk = (batch.source, batch.partition)
        p = BatchPass(batch, pk, self.store.panes_of(pk), self._emitted_upto.get(pk, NEVER), self._seeds.get(pk))
        panes, closed_upto, reject = p.panes, p.closed_upto, p.reject
        size = self.size_ms
        agg = self.aggregator
        update = agg.update if agg is not None else None
        tf, maps, decoded = self.time_field, self.record_stages, batch.decoded
        # orjson, with integers past 64 bits kept exact; not called on a decoded batch
        loads = orjson.loads if decoded else decoder_for(map(_value, batch.records))
        max_ts = NEVER
        where = self.source_where.get(batch.source)
        keep = where.matches if where is not None else None  # compiled once: no parsing per record
        filtered = 0
        # The common shape (event time in epoch ms, tumbling, per-record stages without state) takes
        # a short path for a value whose window is open: its aggregate updated, or (no aggregate) the
        # value buffered; anything else about that value (a new window, a late record, other time
        # formats, a full window, a refusal) falls through to the general path, in offset order.
        fast, one, other = short_paths(self)  # hopping or session windows: `other` (engine/short_paths.py)
        buffered, room = self.store.buffered, self.max_window_records
        # a join's or keyed stage's state (engine/stateful.py): the watermark follows the input's times,
        # and a table join's changelog deletes with a null value
        input_time, in_max = self.input_time, NEVER
        tomb = self.tombstones.get(batch.source)
        for rec in batch.records:
            try:
                value = rec.value
                if tomb is not None and (value is None or value == b"null"):
                    tomb(pk, rec)
                    continue
                if not decoded:
                    try:
                        value = loads(value)
                    except orjson.JSONDecodeError as exc:
                        reject("decode", f"invalid JSON: {exc}", rec, rec.value)
                        continue
                if value.__class__ is not dict:
                    reject("decode", not_an_object(value), rec, rec.value)
                    continue
                if keep is not None and not keep(value):
                    filtered += 1
                    continue
                if input_time is not None:
                    try:
                        it = input_time(rec, value)
                        if it > in_max:
                            in_max = it
                    except (ValueError, DecodeError):
                        pass  # a state takes it or refuses it below
                if one is None:
                    values = self._apply_maps([value], rec, reject, pk) if maps else (value,)
                else:  # one plain per-record stage: _apply_maps without its lists
                    try:
                        values = one(value)
                    except Exception as exc:  # noqa: BLE001 - a user function's failure dead-letters its record
                        reject("stage_error", f"{type(exc).__name__}: {exc}", rec, value, stage=maps[0].name)
                        continue
                for v in values:
                    if fast:
                        t = v.get(tf)
                        if t.__class__ is int and 100_000_000_000 <= t < 100_000_000_000_000:
                            start = t - t % size
                            pane = panes.get(start)
                            if pane is not None and start + size > closed_upto:
                                if update is not None:
                                    why = update(pane.table, v, t)  # type: ignore[arg-type]
                                    if why is None:
                                        pane.count += 1
                                        if t > max_ts:
                                            max_ts = t
                                    else:  # asked once only: a user's add may already have changed its accumulator
                                        reject("invalid", why, rec, v)
                                    continue
                                n = buffered.get(start, 0)
                                if n < room:  # no aggregate: kept as it came (a full window refuses below)
                                    buffered[start] = n + 1
                                    pane.records.append((t, v))  # type: ignore[union-attr]
                                    pane.count += 1
                                    if t > max_ts:
                                        max_ts = t
                                    continue
                    elif other is not None and (got := other(p, rec, v)) is not None:
                        max_ts = got if got > max_ts else max_ts
                        continue
                    ts = self._time_of(p, rec, v)
                    if ts is not None and self._fold_value(p, rec, v, ts) and ts > max_ts:
                        max_ts = ts
            except Exception as exc:  # noqa: BLE001 - a bug met by one record must not stop the daemon for good
                reject("error", f"{type(exc).__name__}: {exc}", rec, rec.value)
        if input_time is not None:
            max_ts = in_max
        self.records_in += batch.read if batch.read is not None else len(batch.records)
        if filtered:
            self.filtered_out += filtered
        if max_ts != NEVER:
            self.watermark.observe(pk, max_ts, now)
        return p.dead

    def _time_of(self, p: BatchPass, rec: Any, v: dict[str, Any]) -> int | None:
        """The record's time in epoch ms (its field, or the source's own time); None when refused."""
        if self.time_mode == "event":
            tf = self.time_field
            t = v.get(tf)
            if t.__class__ is int and 100_000_000_000 <= t < 100_000_000_000_000:
                return t  # type: ignore[no-any-return]
            try:
                return epoch_ms(t) if t is not None else _missing(tf)
            except DecodeError as exc:
                p.reject("no_time", str(exc), rec, v)
                return None
        given = rec.timestamp
        if given is None or not MIN_MS <= given <= MAX_MS:
            p.reject("no_time", f"the source gave this record no usable timestamp ({given!r})", rec, v)
            return None
        return given  # type: ignore[no-any-return]

    def _fold_value(self, p: BatchPass, rec: Any, v: dict[str, Any], ts: int) -> bool:
        """Fold one value at `ts` into its session or every window holding it; True when it joined one."""
        time_range = self.time_range
        if time_range is not None and not (time_range[0] <= ts < time_range[1]):
            self.skipped += 1
            return False
        if self.sessions is not None:
            return self._join_session(p.pk, p.batch, rec, v, ts, p.closed_upto, p.seed, p.reject)
        size, hop = self.size_ms, self.hop_ms
        if hop == size:
            starts: Any = (ts - ts % size,)
        else:
            last = ts - ts % hop
            starts = [last - k * hop for k in range(size // hop)]  # every window holding ts
        panes, seed, closed_upto, pk = p.panes, p.seed, p.closed_upto, p.pk
        table_mode = self.aggregator is not None
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
                self.tracker.hold(pk, Hold(HoldKind.OPEN, start), rec.offset)
            if table_mode:
                why = self.aggregator.update(pane.table, v, ts)  # type: ignore[union-attr, arg-type]
                if why is not None:
                    # a value the first window refuses is refused whole; a later (hopping)
                    # window refuses it only for its own sum, which would overflow
                    p.reject("invalid", why, rec, v, window=(start, start + size) if joined else None)
                    if not pane.table:
                        del panes[start]
                        self.tracker.release(pk, Hold(HoldKind.OPEN, start))
                    if joined:
                        continue
                    break
            else:
                buffered = self.store.buffered.get(start, 0)
                if buffered >= self.max_window_records:
                    p.reject("window_full", f"window already holds max_window_records = "
                             f"{self.max_window_records} records", rec, v, window=(start, start + size))
                    if not pane.records:
                        del panes[start]
                        self.tracker.release(pk, Hold(HoldKind.OPEN, start))
                    break
                self.store.buffered[start] = buffered + 1
                pane.records.append((ts, v))  # type: ignore[union-attr]
            pane.count += 1
            joined = True
        if not joined:
            if late_start is not None:
                p.reject("late", f"window {iso_utc(late_start)} was already emitted", rec, v,
                         window=(late_start, late_start + size))
            elif seed is not None:
                self.replayed_done += 1
        return joined

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
                self.tracker.release(pk, Hold(HoldKind.SESSION, f.id))
            self.tracker.hold(pk, Hold(HoldKind.SESSION, s.id), s.min_offset)
        else:
            s = store.open(pk, key, ts, rec.offset, table if agg is not None else None)
            self.tracker.hold(pk, Hold(HoldKind.SESSION, s.id), rec.offset)
        if s.records is not None:
            s.records.append((ts, v))
        s.count += 1
        return True

    def _apply_maps(self, values: list[dict[str, Any]], rec: Any, reject: Any, pk: PartitionKey) -> list[dict[str, Any]]:
        for stage in self.record_stages:
            out: list[dict[str, Any]] = []
            step = getattr(stage, "stateful_step", None)  # a join's or keyed stage's state (engine/stateful.py)
            for v in values:
                try:
                    out.extend(stage.apply(v) if step is None else step.at(pk, rec, v))
                except Exception as exc:  # noqa: BLE001 - a user function's failure dead-letters its record
                    reject("stage_error", f"{type(exc).__name__}: {exc}", rec, v, stage=stage.name)
            values = out
        return values


_value = attrgetter("value")


def _missing(field: str) -> int:
    raise DecodeError(f"missing time field {field!r}")
