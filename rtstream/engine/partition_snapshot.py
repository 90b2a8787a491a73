"""Checkpoint snapshots of one partition's engine state, and their restore (see rtstream.runtime.checkpoint_store)."""

from __future__ import annotations

import pickle
from typing import cast

from rtstream.engine.commit_rule import Hold, HoldKind
from rtstream.engine.emission import Emission
from rtstream.engine.state import EngineState
from rtstream.model.positions import Mark, PartitionKey
from rtstream.windows.watermark import NEVER


class EngineSnapshots(EngineState):
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
            "written": self.ledger.written.get(pk), "emitted_upto": self._emitted_upto.get(pk), "seed": self._seeds.get(pk),
            "max_ts": self.watermark.max_ts(pk), "mark": self.watermark.marks.get(pk),
            # written windows still holding commits go too: restored, they hold them again until the
            # next close is written (writing them again is harmless, sinks are idempotent)
            "pending": self.ledger.holding(pk),
            "steps": {step.name: step.snapshot(pk) for step in self.steps},  # join and keyed state
        }
        return position, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, pk: PartitionKey, position: int, blob: bytes, now: float) -> int:
        """Resume `pk` from a snapshot (see `snapshot`); returns how many open windows it brought back."""
        state = pickle.loads(blob)  # noqa: S301 - our own file under state_dir, see rtstream.runtime.checkpoint_store
        tracker = self.tracker
        panes = self.store.panes_of(pk)
        for start, pane in state["panes"].items():
            panes[start] = pane
            tracker.hold(pk, Hold(HoldKind.OPEN, start), pane.min_offset)
            if pane.records is not None:
                self.store.buffered[start] = self.store.buffered.get(start, 0) + len(pane.records)
        for s in state["sessions"]:
            assert self.sessions is not None, "a session checkpoint restored into windows of another type"
            self.sessions.adopt(pk, s)
            tracker.hold(pk, Hold(HoldKind.SESSION, s.id), s.min_offset)
        # The snapshot's marks replace any from the commit: a commit made after the snapshot would skip
        # records the restored windows still need, and those windows are written again whole.
        for name, marks in (("written", self.ledger.written), ("emitted_upto", self._emitted_upto), ("seed", self._seeds)):
            if state[name] is not None:
                marks[pk] = state[name]  # type: ignore[index]
            else:
                marks.pop(pk, None)  # type: ignore[attr-defined]
        if state["max_ts"] is not None:
            self.watermark.observe(pk, state["max_ts"], now)
        if state["mark"] is not None:
            self.watermark.marks[pk] = state["mark"]
        tracker.processed(pk, position)
        for step in self.steps:
            if step.name in state.get("steps", {}):
                step.restored(pk, state["steps"][step.name], position)
        for window, rows, offset in state["pending"]:
            again = next((em for em in self.ledger.pending.values() if em.window.id == window.id), None)
            if again is None:  # the same window may come back with each of its partitions: written once
                again = Emission(self.ledger.new_id(), window, rows, [], tag_final=self.update_interval_s is not None)
                self.ledger.handed(again)
                self._restored.append(again)
            again.partitions.append((pk, offset))
            tracker.hold(pk, Hold(HoldKind.EMIT, again.id), offset)
        return len(state["panes"]) + len(state["sessions"])

    def epoch_of(self, pk: PartitionKey) -> int | None:
        return self._epochs.get(pk)

    def checkpoint_saved(self, pk: PartitionKey, position: int, epoch: int | None) -> None:
        """The snapshot of `pk` at `position` is on disk: the state it holds no longer holds commits
        (unless the partition was revoked, or assigned again, while the snapshot was being saved)."""
        if epoch is None or self._epochs.get(pk) != epoch:
            return
        for step in self.steps:
            step.saved(pk, position)

    def adopt_written(self, pk: PartitionKey, mark: Mark) -> bool:
        """`adopt_marks` for one partition: returns whether it adopted its mark."""
        return pk in self.adopt_marks({pk: mark})

    def adopt_marks(self, marks: dict[PartitionKey, Mark]) -> set[PartitionKey]:
        """Partitions that resume below a mark this process saved for them before a commit round that
        may not have committed them (rtstream.runtime.written_marks): windows ending by a mark's
        `written_upto` were written whole, with the partition's records below `next_offset` in them,
        even if its own commit had not landed (a kill between two sources' commits). Without this
        the replay wrote such a window again from this partition's records alone (a join's window
        orders-only, tests/integration/test_kafka_joins.py, 3 runs in 7; an aggregate's of two sources,
        tests/e2e/test_multisource_kill.py, 10 in 10). Returns the partitions whose mark said more
        than their own (their commit's, or their restored checkpoint's).

        A window another partition keeps open is written again by its close, whole: the adopting
        partitions spare it and every window after it (a mark has no holes), and fold their records
        of it again. Decided for all of `marks` at once, so the order they arrived in does not
        matter: one partition spared a window for another that then dropped it as written, and the
        window was written again with the first one's records alone; adopted one by one, before the
        other's checkpoint was back, the first dropped its share of a window the other then held open
        (tests/integration/test_kafka_journal_adopt_order.py)."""
        if getattr(self, "counts", None) is not None:
            return set()  # count windows resume from checkpoints and never commit past them
        upto = self._uptos(marks)
        for pk, written_upto in upto.items():
            self._adopt(pk, Mark(written_upto, marks[pk].next_offset))
        return set(upto)

    def _uptos(self, marks: dict[PartitionKey, Mark]) -> dict[PartitionKey, int]:
        """How far each partition of `marks` takes its mark, capped below the first window another
        partition keeps open (one it does not drop as written): lowered until none moves."""
        ends: dict[PartitionKey, list[int]] = {}  # each partition's open windows, by their ends
        for start, panes in self.store.snapshot().items():
            for p, _ in panes:
                ends.setdefault(cast(PartitionKey, p), []).append(start + self.size_ms)  # the store's keys
        kept: dict[PartitionKey, list[int]] = {}  # never dropped by adoption: sessions stay whole
        if self.sessions is not None:
            for p in self._epochs:
                kept[p] = [s.end(self.sessions.gap) for s in self.sessions.of(p)]
        upto = {pk: m.written_upto for pk, m in marks.items()}
        moved = True
        while moved:
            moved = False
            for pk in list(upto):
                others = [e for p, es in ends.items() if p != pk for e in es if e > upto.get(p, NEVER)]
                others += [e for p, es in kept.items() if p != pk for e in es]
                if others and min(others) <= upto[pk]:
                    upto[pk] = min(others) - 1
                    moved = True
                seed = self._seeds.get(pk)
                if upto[pk] == NEVER or (seed is not None and seed.written_upto >= upto[pk]):
                    del upto[pk]  # says nothing more than its own: it keeps every window it holds
                    moved = True
        return upto

    def _adopt(self, pk: PartitionKey, mark: Mark) -> None:
        upto = mark.written_upto
        self._seeds[pk] = mark
        self.ledger.seed(pk, upto)
        self._emitted_upto[pk] = max(self._emitted_upto.get(pk, NEVER), upto)
        # a restored checkpoint older than the mark may hold such a window open: it is dropped, and
        # the records after the checkpoint are skipped as written (below the mark's next offset)
        panes = self.store.panes_of(pk)
        for start in [s for s in panes if s + self.size_ms <= upto]:
            pane = panes.pop(start)
            if pane.records is not None:
                self.store.buffered[start] = self.store.buffered.get(start, 0) - len(pane.records)
            self.tracker.release(pk, Hold(HoldKind.OPEN, start))
            self.replayed_done += pane.count

    def take_restored(self) -> list[Emission]:
        out, self._restored = self._restored, []
        return out
