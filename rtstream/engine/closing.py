"""Closing windows: what the watermark lets go becomes an Emission on its way to the sinks.

Each emission holds its partitions' commits (rtstream.engine.commit_rule) until the sinks have it; a
close's marks ride on its last emission.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from rtstream.engine.commit_rule import Hold, HoldKind
from rtstream.engine.emission import Emission
from rtstream.engine.outer_rows import hold_back
from rtstream.engine.released import fold_released
from rtstream.engine.state import EngineState
from rtstream.model.positions import PartitionKey
from rtstream.model.window import Window
from rtstream.windows.clock import MAX_MS
from rtstream.windows.sessions import Session
from rtstream.windows.watermark import NEVER


class WindowCloser(EngineState):
    def close_ready(self, now: float, wall_ms: int, caught_up: bool = True) -> list[Emission]:
        """Emit every window the watermark has passed (each partition's share by its own mark)."""
        wm = self.watermark
        wm.advance(now, wall_ms, caught_up)
        for step in self.steps:  # join and keyed state the watermark has passed (rtstream.engine.stateful)
            step.evict(wm)
        current = wm.current
        mark: Callable[[Hashable], int] = wm.mark
        if self.steps:  # rows the steps let go (rtstream.engine.released), before their windows close
            fold_released(self)  # type: ignore[arg-type]
            if back := hold_back(self):  # an interval left join's lone rows come `upper` late: windows wait
                current, mark = current - back, lambda pk: wm.mark(pk) - back  # noqa: E731
        marks = {}
        for pk in self._epochs:
            if wm.has_delivered(pk):
                marks[pk] = self._emitted_upto[pk] = max(self._emitted_upto.get(pk, NEVER), mark(pk))
        if self.sessions is not None:
            emissions = self._emit_sessions(self.sessions.take(current, mark))
        else:
            taken = self.store.take(mark, self.size_ms)
            emissions = [self._emit(start, panes) for start, panes in taken.items()]
        if self.emit_empty:
            emissions = self._with_empty(emissions, current)
        if self.update_interval_s is not None:
            for em in emissions:
                self._updated_counts.pop(em.window.start_ms, None)
            if now - self._last_update >= self.update_interval_s:
                self._last_update = now
                emissions += self._running()
        self.ledger.settle(self._epochs, marks, emissions)
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
            em = Emission(self.ledger.new_id(), window, rows, [], tag_final=True)
            self.ledger.handed(em, final=False)
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

    def close_all(self) -> list[Emission]:
        """End of a finite run: emit everything still open; once written, every window is."""
        if self.steps:  # every row a step still keeps goes out (a left row waiting for a partner, alone)
            fold_released(self, final=True)  # type: ignore[arg-type]
        if self.sessions is not None:
            emissions = self._emit_sessions(self.sessions.take_all())
        else:
            emissions = [self._emit(start, panes) for start, panes in self.store.take(None, self.size_ms).items()]
        self.ledger.settle(self._epochs, {pk: MAX_MS for pk in self._epochs}, emissions)
        return emissions

    def _emit_sessions(self, groups: list[list[tuple[PartitionKey, Session]]]) -> list[Emission]:
        out = []
        gap = self.size_ms if self.sessions is None else self.sessions.gap
        for group in groups:
            keep = []
            for pk, s in group:
                seed = self._seeds.get(pk)
                if seed is not None and s.end(gap) <= seed[0]:  # written before the restart
                    self.tracker.release(pk, Hold(HoldKind.SESSION, s.id))
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
        eid = self.ledger.new_id()
        if window is None:
            window = Window(start, self.assigner.end(start))
        window.input_count = sum(pane.count for _, pane in panes)
        parts = []
        for pk, pane in panes:
            self.tracker.hold(pk, Hold(HoldKind.EMIT, eid), pane.min_offset)  # type: ignore[arg-type]
            holder = Hold(HoldKind.SESSION, pane.id) if isinstance(pane, Session) else Hold(HoldKind.OPEN, start)
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
        self.ledger.handed(em)
        return em
