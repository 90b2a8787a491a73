"""The one key rule and the one row shape of the three joins (rtstream.engine.join_keys, join_rows),
each checked in the real window engine against a plain reference computation of SQL's semantics."""

import asyncio
from decimal import Decimal

import pytest

from rtstream.engine.commit_rule import CommitTracker
from rtstream.engine.join_keys import NO_MATCH, join_key
from rtstream.stages.join import IntervalJoinConfig, IntervalJoinStage, JoinConfig, WindowJoinStage
from rtstream.stages.table_join import TableJoinConfig, TableJoinStage
from tests.unit.engine.test_joins import BASE, CTX, MIN, Feed, engine

_ABSENT = object()


def sql_key(v):
    """The reference: SQL's `=` over JSON kinds: null never equal, booleans, strings and numbers apart."""
    if v is None or v is _ABSENT or (isinstance(v, float) and v != v):
        return None
    kind = "b" if isinstance(v, bool) else "s" if isinstance(v, str) else "n"
    return (kind, float(v) if kind == "n" else v)


def with_key(field, value, **fields):
    row = dict(fields)
    if value is not _ABSENT:
        row[field] = value
    return row


# one of each kind a key can be; the bad ones (a list, an object, the field missing) are refused
GOOD = [1, 2, 2.0, "2", True, False, None, float("nan"), "a", 0]
BAD = [[3], {"x": 1}, _ABSENT]


def run_window(stage, orders, payments):
    t = CommitTracker()
    feed = Feed(engine(stage, t, lateness=0), t)
    dead = feed.send("orders", orders) + feed.send("payments", payments)
    out = []
    for em in feed.close(final=True):
        out += asyncio.run(stage.run(em.window, em.rows))
    return out, dead


@pytest.mark.parametrize("how", ["inner", "left"])
def test_window_join_keys_follow_sql_and_the_where_kinds(how):
    orders = [with_key("id", k, ts=BASE + i, o=i) for i, k in enumerate(GOOD + BAD)]
    payments = [with_key("id", k, ts=BASE + 100 + i, p=i) for i, k in enumerate(GOOD + BAD)]
    stage = WindowJoinStage("match", JoinConfig(type="join", left="orders", right="payments", on="id", how=how), CTX)
    out, dead = run_window(stage, orders, payments)
    # each bad record is dead-lettered alone, with its reason and its position; the rest joins
    n = len(GOOD)
    assert sorted((d.source, d.offset, d.reason) for d in dead) == sorted(
        [(s, n + i, "stage_error") for s in ("orders", "payments") for i in range(3)])
    details = sorted(d.detail for d in dead if d.source == "orders")
    assert details == ["ValueError: key field 'id' must be a string, number or boolean, got a list",
                       "ValueError: key field 'id' must be a string, number or boolean, got an object",
                       "ValueError: missing key field 'id'"]
    expected = set()
    for o in orders[:n]:
        ok = sql_key(o.get("id", _ABSENT))
        matches = [p["p"] for p in payments[:n] if ok is not None and sql_key(p.get("id", _ABSENT)) == ok]
        expected |= {(o["o"], p) for p in matches}
        if not matches and how == "left":
            expected.add((o["o"], None))
    assert sorted(((r["o"], r.get("p")) for r in out), key=repr) == sorted(expected, key=repr)
    assert len(out) == len(expected)  # no duplicates either
    assert (4, 0) not in expected and (0, 4) not in expected  # true is not 1
    assert (1, 2) in expected and (3, 1) not in expected  # 2 is 2.0; "2" is not 2


@pytest.mark.parametrize("how", ["inner", "left"])
def test_window_join_with_a_mistyped_on_is_loud_not_a_cross_join(how):
    orders = [{"order_id": i, "ts": BASE + i} for i in range(3)]
    payments = [{"order_id": i % 2, "ts": BASE + 10 + i, "paid": i} for i in range(3)]
    stage = WindowJoinStage("match", JoinConfig(type="join", left="orders", right="payments", on="orderid",
                                                how=how), CTX)
    out, dead = run_window(stage, orders, payments)
    assert out == []  # before: 9 rows, every order with every payment
    assert len(dead) == 6 and {d.detail for d in dead} == {"ValueError: missing key field 'orderid'"}


def test_a_left_joins_rows_all_have_one_shape_and_their_own_time():
    orders = [{"id": "a", "ts": BASE + 10, "amount": 1}, {"id": "b", "ts": BASE + 20, "amount": 2},
              {"id": None, "ts": BASE + 30, "amount": 3}]
    payments = [{"id": "a", "ts": BASE + 5, "paid": 7, "amount": 70}, {"id": "a", "ts": BASE + 50, "paid": 8,
                                                                        "amount": 80}]
    stage = WindowJoinStage("match", JoinConfig(type="join", left="orders", right="payments", on="id", how="left"),
                            CTX)
    out, dead = run_window(stage, orders, payments)
    assert dead == []
    fields = ["id", "left_ts", "left_amount", "right_ts", "paid", "right_amount", "ts"]
    assert all(list(r) == fields for r in out), out
    by = sorted(out, key=lambda r: (r["left_amount"], r["right_ts"] or 0))
    assert [tuple(r.values()) for r in by] == [
        ("a", BASE + 10, 1, BASE + 5, 7, 70, BASE + 10),  # the later of the pair's times
        ("a", BASE + 10, 1, BASE + 50, 8, 80, BASE + 50),
        ("b", BASE + 20, 2, None, None, None, BASE + 20),  # unmatched: the right side's fields null
        (None, BASE + 30, 3, None, None, None, BASE + 30),  # a null key matches nothing
    ]


def test_a_left_joins_unmatched_row_in_a_window_without_right_rows_has_the_same_fields():
    stage = WindowJoinStage("match", JoinConfig(type="join", left="orders", right="payments", on="id", how="left"),
                            CTX)
    t = CommitTracker()
    feed = Feed(engine(stage, t, lateness=0), t)
    # the first window has orders only; the payments of a later one have come before it closes
    feed.send("orders", [{"id": "z", "ts": BASE, "amount": 2}, {"id": "a", "ts": BASE + 2 * MIN, "amount": 1}])
    feed.send("payments", [{"id": "a", "ts": BASE + 2 * MIN + 1, "amount": 9, "paid": True}])
    rows = [r for em in feed.close(final=True) for r in asyncio.run(stage.run(em.window, em.rows))]
    fields = ["id", "left_ts", "left_amount", "right_ts", "right_amount", "paid", "ts"]
    assert [list(r) for r in rows] == [fields] * 2
    assert [r["paid"] for r in rows] == [None, True]


def interval_stage():
    cfg = IntervalJoinConfig(type="interval_join", left="orders", right="payments", on="id", lower="0s",
                             upper="1m")
    return IntervalJoinStage("ij", cfg, CTX)


def table_stage(how):
    cfg = TableJoinConfig(type="table_join", stream="orders", table="payments", on="id", how=how)
    return TableJoinStage("tj", cfg, CTX)


def run_stateful(stage, orders, payments, table=False):
    t = CommitTracker()
    feed = Feed(engine(stage, t, lateness=0), t)
    first, second = (payments, orders) if table else (orders, payments)  # a table is read before it is used
    dead = feed.send("payments" if table else "orders", first) + feed.send("orders" if table else "payments",
                                                                          second)
    return [r for em in feed.close(final=True) for r in em.rows], dead


@pytest.mark.parametrize("kind", ["interval_join", "table_join_inner", "table_join_left"])
def test_interval_and_table_join_keys_follow_the_same_rule(kind):
    table = kind.startswith("table")
    # a table keeps one row per key: the table side gets each good key once
    pay_keys = [1, 2.0, "2", True, None, float("nan"), "a"] if table else GOOD
    orders = [with_key("id", k, ts=BASE + i, o=i) for i, k in enumerate(GOOD + BAD)]
    payments = [with_key("id", k, ts=BASE + (0 if table else 100) + i, p=i) for i, k in enumerate(pay_keys + BAD)]
    stage = table_stage(kind.rsplit("_", 1)[1]) if table else interval_stage()
    out, dead = run_stateful(stage, orders, payments, table)
    n, m = len(GOOD), len(pay_keys)
    assert sorted((d.source, d.offset) for d in dead) == sorted(
        [("orders", n + i) for i in range(3)] + [("payments", m + i) for i in range(3)])
    assert {d.detail for d in dead} == {
        "ValueError: key field 'id' must be a string, number or boolean, got a list",
        "ValueError: key field 'id' must be a string, number or boolean, got an object",
        "ValueError: missing key field 'id'"}
    expected = set()
    for o in orders[:n]:
        ok = sql_key(o["id"])
        matches = [p["p"] for p in payments[:m] if ok is not None and sql_key(p["id"]) == ok]
        expected |= {(o["o"], p) for p in matches}
        if not matches and kind == "table_join_left":
            expected.add((o["o"], None))
    assert sorted(((r["o"], r.get("p")) for r in out), key=repr) == sorted(expected, key=repr)
    assert len(out) == len(expected)
    # every row has the same fields, and the time field three ways
    assert {frozenset(r) for r in out} == {frozenset(["id", "left_ts", "o", "right_ts", "p", "ts"])}


def test_the_key_function_itself():
    assert join_key({"k": 2}, "k") == join_key({"k": 2.0}, "k") == join_key({"k": Decimal(2)}, "k")
    assert join_key({"k": True}, "k") != join_key({"k": 1}, "k")
    assert join_key({"k": False}, "k") != join_key({"k": 0}, "k")
    assert join_key({"k": "2"}, "k") != join_key({"k": 2}, "k")
    for never in (None, float("nan"), Decimal("NaN")):
        assert join_key({"k": never}, "k") is NO_MATCH
    with pytest.raises(ValueError, match="missing key field 'k'"):
        join_key({"K": 1}, "k")
    with pytest.raises(ValueError, match="got a list"):
        join_key({"k": [1]}, "k")



def test_a_field_named_like_a_renamed_one_is_not_overwritten():
    """Attacker's names: a left row with its own `left_ts`, a right row with `left_amount`: every
    value of both rows is still in the row, none overwritten."""
    cfg = JoinConfig(type="join", left="orders", right="payments", on="id", how="left")
    stage = WindowJoinStage("match", cfg, CTX)
    orders = [{"id": "a", "ts": BASE + 10, "left_ts": "mine", "amount": 1, "x": "o"}]
    payments = [{"id": "a", "ts": BASE + 20, "left_amount": "theirs", "amount": 2, "x": "p"}]
    [row], dead = run_window(stage, orders, payments)
    assert dead == []
    values = sorted(map(repr, row.values()))
    assert values == sorted(map(repr, ["a", BASE + 10, "mine", 1, "o", BASE + 20, "theirs", 2, "p", BASE + 20]))
    assert row["ts"] == BASE + 20 and len(row) == 10
