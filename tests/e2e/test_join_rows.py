"""The real daemon joining two files into a table sink: keys by SQL's rule and the `where` kinds, bad
keys dead-lettered alone, and every row of a left join in one shape (a table sink takes them all)."""

from __future__ import annotations

import sqlite3

import orjson
import pytest

from tests.data import BASE_MS, write_lines
from tests.reference import iso
from tests.support import Daemon, read_jsonl, window_files, write_config

MIN = 60_000
ABSENT = object()

# (key, minute) of each order and payment; the bad keys are a list, an object and a missing field
ORDER_KEYS = [(1, 0), (2, 0), (2.0, 0), ("2", 0), (True, 0), (None, 0), (ABSENT, 0), ([3], 0), ({"x": 1}, 0),
              (7, 0), (1, 1), (8, 1), (None, 1), (5, 2), (6, 2)]
PAY_KEYS = [(1, 0), (1, 0), (2, 0), (True, 0), (None, 0), (ABSENT, 0), ([3], 0), ("2", 0), (1, 1), (None, 1),
            (8, 2)]
BAD = (ABSENT, "list", "dict")


def rows(keys, side):
    out = []
    for i, (key, minute) in enumerate(keys):
        row = {"n": i, "ts": BASE_MS + minute * MIN + 1000 * (i + 1), "amount": i * 10}
        if side == "payments":
            row["paid"] = i
        if key is not ABSENT:
            row["order_id"] = key
        out.append(row)
    return out


def bad(row):
    return "order_id" not in row or isinstance(row["order_id"], (list, dict))


def sql_key(v):
    """SQL's `=` over JSON kinds: null never equal; booleans, strings and numbers each apart."""
    if v is None:
        return None
    return ("b", v) if isinstance(v, bool) else ("s", v) if isinstance(v, str) else ("n", float(v))


def left_join(orders, payments):
    """(order n, payment n or None) of a left join per one-minute window."""
    out = []
    for o in orders:
        if bad(o):
            continue
        w = (o["ts"] - BASE_MS) // MIN
        k = sql_key(o["order_id"])
        matches = [p["n"] for p in payments if not bad(p) and k is not None and (p["ts"] - BASE_MS) // MIN == w
                   and sql_key(p["order_id"]) == k]
        out += [(o["n"], p) for p in matches] or [(o["n"], None)]
    return sorted(out, key=repr)


@pytest.mark.parametrize("how", ["left", "inner"])
def test_a_join_into_sqlite_writes_every_row_and_dead_letters_bad_keys_alone(tmp_path, how):
    orders, payments = rows(ORDER_KEYS, "orders"), rows(PAY_KEYS, "payments")
    write_lines(tmp_path / "orders.jsonl", orders)
    write_lines(tmp_path / "payments.jsonl", payments)
    cfg = write_config(tmp_path / "rt.toml", {
        "pipeline": {"name": "joinrows", "flow": "[orders, payments] >> match >> [db, files]"},
        "window": {"size": "1m", "lateness": "5s"},
        "sources": {"orders": {"type": "file", "path": str(tmp_path / "orders.jsonl")},
                    "payments": {"type": "file", "path": str(tmp_path / "payments.jsonl")}},
        "stages": {"match": {"type": "join", "left": "orders", "right": "payments", "on": "order_id", "how": how}},
        # insert: the upsert key of a join's rows is another matter (one finite run writes each row once)
        "sinks": {"db": {"type": "sqlite", "path": str(tmp_path / "out.db"), "table": "matched", "mode": "insert"},
                  "files": {"type": "file", "path": str(tmp_path / "out")}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state")},
    })
    with Daemon(cfg, tmp_path) as d:
        assert d.wait(90) == 0, d.stderr[-3000:]  # before: a left join's sink halted and the run never ended
        assert "halted" not in d.stderr and "Traceback" not in d.stderr, d.stderr[-3000:]

    truth = left_join(orders, payments)
    if how == "inner":
        truth = [t for t in truth if t[1] is not None]
    db = sqlite3.connect(tmp_path / "out.db")
    db.row_factory = sqlite3.Row
    got = [dict(r) for r in db.execute("select * from matched")]
    assert sorted(((r["left_n"], r["right_n"]) for r in got), key=repr) == truth
    fields = ["order_id", "left_n", "left_ts", "left_amount", "right_n", "right_ts", "right_amount", "paid", "ts"]
    assert {c[1] for c in db.execute("pragma table_info(matched)")} == {*fields, "window_start", "window_end"}
    by_n = {o["n"]: o for o in orders} | {("p", p["n"]): p for p in payments}
    for r in got:  # the row's own time is the later of the pair's; an unmatched row's, the order's
        o = by_n[r["left_n"]]
        p = by_n.get(("p", r["right_n"]))
        assert r["ts"] == (max(o["ts"], p["ts"]) if p else o["ts"])
        assert r["left_amount"] == o["amount"] and r["right_amount"] == (p["amount"] if p else None)
    files = [r for rs in window_files(tmp_path / "out").values() for r in rs]
    assert len(files) == len(truth) and {frozenset(r) for r in files} == {frozenset(fields + ["window_start",
                                                                                               "window_end"])}
    assert any(r["window_start"] == iso(BASE_MS + 2 * MIN) and r["right_n"] is None for r in files) == (how == "left")

    # each bad key is its own dead letter, with the reason and its line's position; nothing else is
    dead = read_jsonl(tmp_path / "dead.jsonl")
    want = sorted((src, r["n"]) for src, rs in (("orders", orders), ("payments", payments)) for r in rs if bad(r))
    assert sorted((x["source"], x["value"]["n"]) for x in dead) == want
    for x in dead:
        raw = (tmp_path / f"{x['source']}.jsonl").read_bytes()
        assert orjson.loads(raw[x["offset"]:].split(b"\n", 1)[0]) == x["value"]
        assert x["reason"] == "stage_error" and x["stage"] == "match"
        assert x["detail"] in ("ValueError: missing key field 'order_id'",
                               "ValueError: key field 'order_id' must be a string, number or boolean, got a list",
                               "ValueError: key field 'order_id' must be a string, number or boolean, got an object")
