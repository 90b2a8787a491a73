"""Checkpoint snapshots of one partition's engine state, and their restore (see rtstream.runtime.checkpoint_store)."""

from __future__ import annotations

import pickle

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
        """`pk` resumes below a mark this process saved for it before a commit round that may not have
        committed it (rtstream.runtime.written_marks): windows ending by `mark.written_upto` were
        written whole, with this partition's records below `mark.next_offset` in them, even if its
        own commit had not landed (a kill between two sources' commits). Without this the replay
        wrote such a window again from this partition's records alone (a join's window orders-only,
        tests/integration/test_kafka_joins.py, 3 runs in 7; an aggregate's of two sources,
        tests/e2e/test_multisource_kill.py, 10 in 10). Returns whether the mark said more than the
        partition's own (its commit's, or its restored checkpoint's)."""
        if getattr(self, "counts", None) is not None:
            return False  # count windows resume from checkpoints and never commit past them
        upto = mark.written_upto
        # a window this process holds open from other partitions is written by its close, whole:
        # this partition's records of it are folded again, not skipped (a rebalance mid-run)
        others = [start + self.size_ms for start, panes in self.store.snapshot().items()
                  for p, _ in panes if p != pk]
        if self.sessions is not None:
            own = {s.id for s in self.sessions.of(pk)}
            others += [s.end(self.sessions.gap) for s in self.sessions.alive.values() if s.id not in own]
        if others and min(others) <= upto:
            upto = min(others) - 1
        seed = self._seeds.get(pk)
        if upto == NEVER or (seed is not None and seed.written_upto >= upto):
            return False
        self._seeds[pk] = Mark(upto, mark.next_offset)
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
        return True

    def take_restored(self) -> list[Emission]:
        out, self._restored = self._restored, []
        return out
