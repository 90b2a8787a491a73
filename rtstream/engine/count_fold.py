"""Count windows in the engine (rtstream.windows.counts): folded per partition and key, closed at
their N-th record, checkpointed and restored with the partition.

The commit rule for them: an unfinished window holds its partition at its first offset, and the
partition is also held at its last checkpoint's position (hold id 0), which moves only once a
checkpoint is saved (`checkpointed`). A restart then always finds a checkpoint at or after the
commit, and resumes every key's count exactly where it was; the windows closed after that
checkpoint are rebuilt from the same records in the same order and written again (sinks are
idempotent per window).

Everything else (time panes, sessions) is the time-window fold's: when `counts` is None, each
method here hands over to it unchanged.
"""

from __future__ import annotations

import pickle
from typing import Any

import orjson

from rtstream.engine.closing import WindowCloser
from rtstream.engine.commit_rule import Hold, HoldKind
from rtstream.engine.dead_letter import DeadLetter
from rtstream.engine.decode import decoder_for, not_an_object
from rtstream.engine.emission import Emission
from rtstream.engine.fold import BatchFold, BatchPass
from rtstream.engine.partition_snapshot import EngineSnapshots
from rtstream.model.batch import Batch
from rtstream.model.positions import PartitionKey
from rtstream.model.window import Window
from rtstream.windows.counts import CountStore, CountWindow
from rtstream.windows.watermark import NEVER

AT_CHECKPOINT = Hold(HoldKind.COUNT, 0)


class CountFold(BatchFold, WindowCloser, EngineSnapshots):
    counts: CountStore | None = None
    _counted: list[Emission]

    def use_counts(self, size: int) -> None:
        self.counts = CountStore(size)
        self._counted = []

    def process(self, batch: Batch, now: float) -> list[DeadLetter]:
        counts = self.counts
        if counts is None:
            return super().process(batch, now)
        pk = (batch.source, batch.partition)
        p = BatchPass(batch, pk, {}, NEVER, None)
        if batch.records:
            self.tracker.hold(pk, AT_CHECKPOINT, batch.records[0].offset)  # kept if a checkpoint holds earlier
        windows = counts.of(pk)
        decoded = batch.decoded
        loads = orjson.loads if decoded else decoder_for(r.value for r in batch.records)
        where = self.source_where.get(batch.source)
        max_ts = NEVER
        for rec in batch.records:
            try:
                value = rec.value
                if not decoded:
                    try:
                        value = loads(value)
                    except orjson.JSONDecodeError as exc:
                        p.reject("decode", f"invalid JSON: {exc}", rec, rec.value)
                        continue
                if value.__class__ is not dict:
                    p.reject("decode", not_an_object(value), rec, rec.value)
                    continue
                if where is not None and not where.matches(value):
                    self.filtered_out += 1
                    continue
                for v in self._apply_maps([value], rec, p.reject, pk) if self.record_stages else (value,):
                    ts = self._time_of(p, rec, v)
                    if ts is not None and self._count_value(p, windows, rec, v, ts) and ts > max_ts:
                        max_ts = ts
            except Exception as exc:  # noqa: BLE001 - a bug met by one record must not stop the daemon for good
                p.reject("error", f"{type(exc).__name__}: {exc}", rec, rec.value)
        self.records_in += batch.read if batch.read is not None else len(batch.records)
        if max_ts != NEVER:
            self.watermark.observe(pk, max_ts, now)
        return p.dead

    def _count_value(self, p: BatchPass, windows: dict[Any, CountWindow], rec: Any, v: dict[str, Any],
                     ts: int) -> bool:
        agg = self.aggregator
        key = None
        if agg is not None and agg.key is not None:
            key = v.get(agg.key)
            if key is None:
                p.reject("invalid", f"missing key field {agg.key!r}", rec, v)
                return False
            if key.__class__ is dict or key.__class__ is list:
                p.reject("invalid", f"key field {agg.key!r} is not a scalar", rec, v)
                return False
        w = windows.get(key)
        fresh = w is None
        if w is None:
            w = windows[key] = CountWindow(rec.offset, {} if agg is not None else None)
            self.tracker.hold(p.pk, Hold(HoldKind.COUNT, w.id), rec.offset)
        if agg is not None:
            why = agg.update(w.table, v, ts)  # type: ignore[arg-type]
            if why is not None:
                p.reject("invalid", why, rec, v)
                if fresh:
                    del windows[key]
                    self.tracker.release(p.pk, Hold(HoldKind.COUNT, w.id))
                return False
        else:
            w.records.append((ts, v))  # type: ignore[union-attr]  # size <= max_window_records (config)
        w.count += 1
        w.min_ts = ts if w.min_ts is None or ts < w.min_ts else w.min_ts
        w.max_ts = ts if w.max_ts is None or ts > w.max_ts else w.max_ts
        if w.count >= self.counts.size:  # type: ignore[union-attr]
            del windows[key]
            self._counted.append(self._emit_count(p.pk, key, w))
        return True

    def _emit_count(self, pk: PartitionKey, key: Any, w: CountWindow) -> Emission:
        eid = self.ledger.new_id()
        start = w.min_ts if w.min_ts is not None else 0
        # its first record tells it apart from the key's other windows of the same times; a replay
        # rebuilds it from the same record (the key's count resumes from the checkpoint)
        window = Window(start, (w.max_ts if w.max_ts is not None else start) + 1, key=key, input_count=w.count,
                        ident=f"{pk[0]}/{pk[1]}@{w.min_offset}")
        self.tracker.hold(pk, Hold(HoldKind.EMIT, eid), w.min_offset)
        self.tracker.release(pk, Hold(HoldKind.COUNT, w.id))
        if self.aggregator is not None:
            table = w.table if w.table else self.aggregator.zero_table()
            rows = self.aggregator.rows(table, window.start_iso, window.end_iso)  # type: ignore[arg-type]
        else:
            rows = [v for _, v in w.records or ()]  # in the order they came: a count window has no time order
        em = Emission(eid, window, rows, [(pk, w.min_offset)])
        self.ledger.handed(em)
        return em

    def close_ready(self, now: float, wall_ms: int, caught_up: bool = True) -> list[Emission]:
        if self.counts is None:
            return super().close_ready(now, wall_ms, caught_up)
        out, self._counted = self._counted, []
        return out + super().close_ready(now, wall_ms, caught_up)

    def close_all(self) -> list[Emission]:
        """End of a finite run: the unfinished count windows go out too, with fewer than N records."""
        if self.counts is None:
            return super().close_all()
        out, self._counted = self._counted, []
        out += [self._emit_count(pk, key, w) for pk, key, w in self.counts.take_all()]  # type: ignore[arg-type]
        return out + super().close_all()

    def checkpointed(self, positions: dict[PartitionKey, int]) -> None:
        """A checkpoint of these partitions at these positions is saved: the commit may reach them."""
        if self.counts is None:
            return
        for pk, pos in positions.items():
            if self.tracker.next(pk) is not None:
                self.tracker.release(pk, AT_CHECKPOINT)
                self.tracker.hold(pk, AT_CHECKPOINT, pos)

    def snapshot(self, pk: PartitionKey) -> tuple[int, bytes] | None:
        snap = super().snapshot(pk)
        if snap is None or self.counts is None:
            return snap
        return snap[0], pickle.dumps(("count", snap[1], self.counts.of(pk)), protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, pk: PartitionKey, position: int, blob: bytes, now: float) -> int:
        if self.counts is None:
            return super().restore(pk, position, blob, now)
        state = pickle.loads(blob)  # noqa: S301 - our own file under state_dir, see rtstream.runtime.checkpoint_store
        if not (isinstance(state, tuple) and state[0] == "count"):
            raise ValueError(f"the checkpoint of {pk[0]}/{pk[1]} holds time windows; this config has count "
                             "windows (move state.path aside to start over)")
        n = super().restore(pk, position, state[1], now)
        windows = self.counts.of(pk)
        for key, w in state[2].items():
            windows[key] = w
            self.tracker.hold(pk, Hold(HoldKind.COUNT, w.id), w.min_offset)
        self.tracker.hold(pk, AT_CHECKPOINT, position)
        return n + len(state[2])

    def revoke_counts(self, pk: PartitionKey) -> None:
        if self.counts is not None:
            self.counts.drop(pk)  # the holds go with the tracker's partition
