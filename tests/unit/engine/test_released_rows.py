"""Rows let go by two kinds of stateful step in one engine (rtstream.engine.released): an event-time
table_join's stream rows and an interval join's (how = "left") lone left rows. Their refusals are one
list under one hold: writing the letters of one partition never releases another's refused row."""

from rtstream.engine.commit_rule import CommitTracker, Hold, HoldKind
from rtstream.engine.window_engine import WindowEngine
from rtstream.model.batch import Batch
from rtstream.model.record import Record
from rtstream.stages.join import IntervalJoinConfig, IntervalJoinStage
from rtstream.stages.table_join import TableJoinConfig, TableJoinStage
from tests.unit.engine.test_joins import BASE, CTX, MIN

USERS, CLICKS, A, B = ("users", 0), ("clicks", 0), ("a", 0), ("b", 0)


class RefusesBad:
    """A per-record stage after both joins: a row marked bad fails."""

    name = "after"
    per_record = True

    def apply(self, v):
        if v.get("bad"):
            raise ValueError("bad row")
        return [v]


def both():
    table = TableJoinStage("enrich", TableJoinConfig(type="table_join", stream="clicks", table="users", on="user",
                                                     how="left"), CTX)
    interval = IntervalJoinStage("ij", IntervalJoinConfig(type="interval_join", left="a", right="b", on="k",
                                                          lower="0s", upper="20s", how="left"), CTX)
    t = CommitTracker()
    e = WindowEngine(size_ms=MIN, lateness_ms=0, idle_timeout_s=3600, time_mode="event", time_field="ts",
                     record_stages=[getattr(table, "record_part", table), interval, RefusesBad()], aggregator=None,
                     tracker=t, max_window_records=1000)
    for pk in (USERS, CLICKS, A, B):
        e.assign(pk, 0)
    return e, t


def send(e, t, pk, values, first):
    end = first + len(values)
    assert e.process(Batch(pk[0], pk[1], [Record(v, first + i) for i, v in enumerate(values)], end, decoded=True),
                     now=0) == []
    t.processed(pk, end)


def checkpoint(e, pk):
    """A checkpoint of the partition: a left interval join holds it at its last one (rtstream.engine.join_state)."""
    pos, _ = e.snapshot(pk)
    e.checkpoint_saved(pk, pos, e.epoch_of(pk))


def refuse_one_of_each(e, t, at_ms):
    """A click (offset 0) and a lone left row (offset 0), both bad, let go by a watermark at `at_ms`."""
    send(e, t, USERS, [{"user": "u", "name": "x", "ts": BASE}], 0)
    send(e, t, CLICKS, [{"user": "u", "ts": BASE + 1, "n": 0, "bad": 1}], 0)
    send(e, t, A, [{"k": 1, "ts": BASE, "a": 0, "bad": 1}], 0)
    send(e, t, USERS, [{"user": "u", "name": "y", "ts": at_ms}], 1)
    send(e, t, CLICKS, [{"user": "u", "ts": at_ms, "n": 1}], 1)
    send(e, t, A, [{"k": 2, "ts": at_ms, "a": 1}], 1)
    send(e, t, B, [{"k": 3, "ts": at_ms, "b": 0}], 0)
    assert e.close_ready(0, 0) == []


def test_writing_the_lone_rows_letters_keeps_the_refused_click_held():
    e, t = both()
    refuse_one_of_each(e, t, BASE + 30_000)
    dead = e.take_dead()
    by_pk = {(d.source, d.partition): d for d in dead}
    assert sorted(by_pk) == [A, CLICKS] and len(dead) == 2
    assert {(d.reason, d.stage, d.offset) for d in dead} == {("stage_error", "after", 0)}
    assert all("bad row" in d.detail for d in dead)
    checkpoint(e, A)
    assert t.safe(A) == 0 and t.safe(CLICKS) == 0
    e.dead_written([by_pk[A]])  # the interval join's letter is in the file, the click's is not yet
    assert t.safe(CLICKS) == 0  # the refused click still holds its partition
    assert t.safe(A) == 2  # the lone row's letter is written: A may commit up to its checkpoint
    e.dead_written([by_pk[CLICKS]])
    assert t.safe(CLICKS) == 1  # now only the click the table join still waits on (offset 1) holds it


def test_a_refusal_made_after_the_take_stays_held_when_the_earlier_letters_are_written():
    """The loops take the refusals, await their write, then call dead_written: one of the same partition
    added meanwhile (a later close) keeps its hold."""
    e, t = both()
    refuse_one_of_each(e, t, BASE + 30_000)
    dead = e.take_dead()
    send(e, t, A, [{"k": 4, "ts": BASE + 31_000, "a": 2, "bad": 1}], 2)  # let go (and refused) next close
    for pk, first in ((USERS, 2), (CLICKS, 2), (A, 3), (B, 1)):
        send(e, t, pk, [{"user": "u", "k": 5, "ts": BASE + 2 * MIN, "n": 9}], first)
    for em in e.close_ready(0, 0):  # the windows of BASE's minute, written by the sinks
        e.emitted(em)
    assert [(d.source, d.offset) for d in e.released_dead] == [("a", 2)]  # pending, not taken
    checkpoint(e, A)
    e.dead_written(dead)
    assert t.safe(A) == 2  # (a, 2) is not in the dead-letter file yet
    later = e.take_dead()
    assert [(d.source, d.offset, d.value["a"]) for d in later] == [("a", 2, 2)]
    e.dead_written(later)
    assert t.safe(A) == 4 and t.safe(CLICKS) == 2


def test_a_branched_engine_writes_one_branchs_letter_and_keeps_the_others_held():
    """Two branches (rtstream.engine.branches), each with the left interval join, refuse the same lone
    row: one letter each, each branch's hold kept apart until its own letter is written."""
    from rtstream.engine.branches import BranchedEngine, BranchHolds

    shared = CommitTracker()
    engines = []
    for g in (0, 1):
        interval = IntervalJoinStage("ij", IntervalJoinConfig(type="interval_join", left="a", right="b", on="k",
                                                              lower="0s", upper="20s", how="left"), CTX)
        engines.append(WindowEngine(size_ms=MIN, lateness_ms=0, idle_timeout_s=3600, time_mode="event",
                                    time_field="ts", record_stages=[interval, RefusesBad()], aggregator=None,
                                    tracker=BranchHolds(shared, g), max_window_records=1000))
    e = BranchedEngine(engines, shared, BranchHolds(shared, 2))
    for pk in (A, B):
        e.assign(pk, 0)
    send(e, shared, A, [{"k": 1, "ts": BASE, "a": 0, "bad": 1}, {"k": 2, "ts": BASE + 30_000, "a": 1}], 0)
    send(e, shared, B, [{"k": 3, "ts": BASE + 30_000, "b": 0}], 0)
    assert e.close_ready(0, 0) == []
    dead = e.take_dead()
    assert [(d.source, d.offset, d.reason) for d in dead] == [("a", 0, "stage_error")] * 2
    pos, _ = e.snapshot(A)  # a checkpoint: the join's own hold moves to it
    e.checkpoint_saved(A, pos, e.epoch_of(A))
    own = {Hold(HoldKind.COUNT, 2)}  # the branched engine's hold at its last checkpoint, aside
    assert pos == 2 and shared.safe(A, own) == 0
    e.dead_written(dead[:1])  # branch 0's letter is in the file, branch 1's not yet
    assert shared.safe(A, own) == 0
    e.dead_written(dead[1:])
    assert shared.safe(A, own) == 2
