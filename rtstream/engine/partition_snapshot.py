"""Checkpoint snapshots of one partition's engine state, and their restore (see rtstream.runtime.checkpoint_store)."""

from __future__ import annotations

import pickle

from rtstream.engine.commit_rule import Hold, HoldKind
from rtstream.engine.emission import Emission
from rtstream.engine.state import EngineState
from rtstream.model.positions import Mark, PartitionKey
from rtstream.windows.watermark import NEVER

ALL_OFFSETS = 2**63  # a mark's next offset meaning "every record of its windows was counted"


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
        if pk[0] in self.join_sides:
            self._share_written(pk)
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

    def _share_written(self, pk: PartitionKey) -> None:
        """A joined window holds rows of every side, and was written whole: when one side's commit says
        windows ending by T are written, so are the other sides' rows of them, even if their own
        commit had not landed yet (a kill between two sources' commits). Without this the side that
        replays would write such a window again from its rows alone (found by
        tests/integration/test_kafka_joins.py, 3 runs in 7: a left join's window rewritten with its
        orders only). Their records there were written or late: they are skipped."""
        if self.records_in:
            # only at start, before anything is folded: a partition that comes later (a rebalance)
            # keeps its own mark, and no window this process holds open is ever dropped for it
            return
        upto = self._joined_written
        seed = self._seeds.get(pk)
        if upto != NEVER and (seed is None or seed[0] < upto):
            self._seeds[pk] = Mark(upto, ALL_OFFSETS)
            self.ledger.seed(pk, upto)
            self._emitted_upto[pk] = max(self._emitted_upto.get(pk, NEVER), upto)
        # a restored checkpoint older than the other side's commit may hold such a window open: dropped
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
