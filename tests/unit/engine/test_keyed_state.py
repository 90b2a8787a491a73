"""Per-key state (`type = "keyed"`) in the window engine, checked against a plain running total."""

import random
from types import SimpleNamespace

from rtstream.engine.commit_rule import CommitTracker
from rtstream.engine.window_engine import WindowEngine
from rtstream.model.batch import Batch
from rtstream.model.record import Record
from rtstream.stages.keyed import KeyedConfig, KeyedStage

MIN = 60_000
BASE = 1_767_225_600_000


def running_total(state, record):
    if record.get("boom"):
        raise RuntimeError("boom")
    if record.get("exit"):
        raise SystemExit(3)  # user code cannot end the daemon
    total = (state or 0) + record["amount"]
    return total, [{"user": record["user"], "ts": record["ts"], "total": total}]


def keyed(fn=running_total, ttl=None):
    cfg = KeyedConfig(type="keyed", key="user", function=fn, ttl=ttl)
    return KeyedStage("totals", cfg, SimpleNamespace(extra={}))


def engine(stage, tracker):
    return WindowEngine(size_ms=MIN, lateness_ms=0, idle_timeout_s=3600, time_mode="event", time_field="ts",
                        record_stages=[stage], aggregator=None, tracker=tracker, max_window_records=100_000)


def feed(e, t, values, partition=0, first=0):
    pk = ("s", partition)
    recs = [Record(v, first + i) for i, v in enumerate(values)]
    dead = e.process(Batch("s", partition, recs, first + len(recs), decoded=True), 0)
    t.processed(pk, first + len(recs))
    return dead


def test_running_total_equals_the_reference_and_a_raise_leaves_the_state():
    rnd = random.Random(5)
    values = [{"user": f"u{rnd.randrange(6)}", "ts": BASE + i * 100, "amount": rnd.randrange(100)} for i in range(500)]
    for i in (17, 230, 231):
        values[i] = dict(values[i], boom=True)
    values[300] = dict(values[300], exit=True)
    stage, t = keyed(), CommitTracker()
    e = engine(stage, t)
    e.assign(("s", 0), 0)
    dead = feed(e, t, values)
    assert [(d.reason, d.offset, d.stage) for d in dead] == [("stage_error", o, "totals") for o in (17, 230, 231, 300)]
    assert "SystemExit" in dead[-1].detail and "boom" in dead[0].detail
    rows = [r for em in e.close_all() for r in em.rows]
    totals: dict = {}
    expected = []
    for v in values:
        if v.get("boom") or v.get("exit"):
            continue  # dead-lettered: the state is as it was
        totals[v["user"]] = totals.get(v["user"], 0) + v["amount"]
        expected.append((v["user"], v["ts"], totals[v["user"]]))
    assert [(r["user"], r["ts"], r["total"]) for r in rows] == expected
    assert stage.state_figures()[:2] == (6, 6)


def test_state_is_checkpointed_restored_and_holds_commits_until_saved():
    stage, t = keyed(), CommitTracker()
    e = engine(stage, t)
    pk = ("s", 0)
    e.assign(pk, 0)
    feed(e, t, [{"user": "a", "ts": BASE, "amount": 5}, {"user": "b", "ts": BASE, "amount": 1}])
    for em in e.close_all():
        e.emitted(em)
    assert t.safe(pk) == 0  # the state holds what no checkpoint covers: a replay rebuilds it
    pos, blob = e.snapshot(pk)
    feed(e, t, [{"user": "a", "ts": BASE + 1, "amount": 1}], first=2)  # folded while the checkpoint is saved
    e.checkpoint_saved(pk, pos, e.epoch_of(pk))
    assert t.safe(pk) == 2  # the record after the checkpoint still holds its offset
    # restart from the checkpoint: the state comes back and goes on from it
    stage2, t2 = keyed(), CommitTracker()
    e2 = engine(stage2, t2)
    e2.assign(pk, 0)
    e2.restore(pk, pos, blob, 0)
    assert t2.safe(pk) == 2
    feed(e2, t2, [{"user": "a", "ts": BASE + 1, "amount": 1}, {"user": "b", "ts": BASE + 2, "amount": 2}], first=2)
    rows = [r for em in e2.close_all() for r in em.rows]
    assert [(r["user"], r["total"]) for r in rows] == [("a", 6), ("b", 3)]


def test_revoke_drops_the_partitions_state_only():
    stage, t = keyed(), CommitTracker()
    e = engine(stage, t)
    e.assign(("s", 0), 0)
    e.assign(("s", 1), 0)
    feed(e, t, [{"user": "a", "ts": BASE, "amount": 5}], partition=0)
    feed(e, t, [{"user": "b", "ts": BASE, "amount": 5}], partition=1)
    e.revoke(("s", 0))
    assert stage.state_figures()[:2] == (1, 1)
    assert t.safe(("s", 0)) is None


def test_ttl_forgets_a_quiet_key_and_none_forgets_at_once():
    def fn(state, record):
        return (None if record.get("forget") else (state or 0) + 1), None

    stage, t = keyed(fn, ttl="1m"), CommitTracker()
    e = engine(stage, t)
    e.assign(("s", 0), 0)
    feed(e, t, [{"user": "a", "ts": BASE}, {"user": "b", "ts": BASE + 30_000}, {"user": "c", "ts": BASE},
                {"user": "c", "ts": BASE, "forget": True}])
    assert stage.state_figures()[0] == 2
    feed(e, t, [{"user": "z", "ts": BASE + 61_000}], first=4)
    e.close_ready(0, 0)
    assert sorted(k for states in stage.stateful_step.states.values() for k in states) == ["b", "z"]


def test_a_function_that_breaks_its_contract_is_dead_lettered_with_the_reason():
    stage, t = keyed(lambda state, record: "nope"), CommitTracker()
    e = engine(stage, t)
    e.assign(("s", 0), 0)
    [dead] = feed(e, t, [{"user": "a", "ts": BASE}])
    assert dead.reason == "stage_error" and "expected a tuple (state, outputs)" in dead.detail
    [dead] = feed(e, t, [{"user": {"deep": [1]}, "ts": BASE}], first=1)
    assert "must be a scalar" in dead.detail
    assert stage.state_figures()[0] == 0


def test_keys_are_apart_by_kind_true_is_not_1():
    """As the joins' rule (rtstream.engine.join_keys): booleans apart from numbers, strings from numbers."""
    stage, t = keyed(), CommitTracker()
    e = engine(stage, t)
    e.assign(("s", 0), 0)
    users = [1, True, "1", 1.0, True, 1]
    assert feed(e, t, [{"user": u, "ts": BASE + i, "amount": 1} for i, u in enumerate(users)]) == []
    rows = [r for em in e.close_all() for r in em.rows]
    assert [r["total"] for r in rows] == [1, 1, 1, 2, 2, 3]  # 1 and 1.0 are one JSON number
    assert stage.state_figures()[:2] == (3, 3)
