"""A join after one side's own per-record stage (`orders >> clean >> match; payments >> match`): the
join names the source (its records keep it), the stage runs on that side only, and the join keeps its
state in the fold. Found by a first-hour review: every way of writing it was refused, and the flow the
README describes dead-lettered every record ("keeps state and runs only in the fold")."""

from __future__ import annotations

import pytest

from tests.data import BASE_MS, write_lines
from tests.support import Daemon, read_jsonl, run_cli, window_files, write_config

MIN = 60_000
CLEAN = '''def clean(r):
    return {**r, "amount": r["amount"] * 100, "cleaned": True}
'''


def data():
    orders = [{"order_id": i % 7, "n": i, "amount": i, "ts": BASE_MS + i * 7_000} for i in range(40)]
    payments = [{"order_id": i % 5, "p": i, "ts": BASE_MS + i * 6_000 + 500} for i in range(45)]
    return orders, payments


def config(tmp_path, kind, left="orders"):
    match = ({"type": "join", "left": left, "right": "payments", "on": "order_id"} if kind == "join" else
             {"type": "interval_join", "left": left, "right": "payments", "on": "order_id",
              "lower": "0s", "upper": "20s"})
    return write_config(tmp_path / "rt.toml", {
        "pipeline": {"name": "own", "flow": "orders >> clean >> match >> out\npayments >> match",
                     "python_path": [str(tmp_path)]},
        "window": {"size": "1m", "lateness": "0s"},
        "sources": {"orders": {"type": "file", "path": str(tmp_path / "orders.jsonl")},
                    "payments": {"type": "file", "path": str(tmp_path / "payments.jsonl")}},
        "stages": {"clean": {"type": "map", "call": "own_fns:clean"}, "match": match},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out")}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "state": {"checkpoint_interval": "10s"},
        "daemon": {"state_dir": str(tmp_path / "state")},
    })


def reference(kind, orders, payments):
    """(order n, payment p) pairs: the same minute (join) or the payment 0-20 s after the order."""
    def pairs(o, p):
        if kind == "join":
            return (o["ts"] - BASE_MS) // MIN == (p["ts"] - BASE_MS) // MIN
        return o["ts"] <= p["ts"] <= o["ts"] + 20_000
    return sorted((o["n"], p["p"]) for o in orders for p in payments if o["order_id"] == p["order_id"] and pairs(o, p))


@pytest.mark.parametrize("kind", ["join", "interval_join"])
def test_a_join_after_one_sides_own_stage_joins_the_cleaned_rows(tmp_path, kind, left="clean"):
    orders, payments = data()
    write_lines(tmp_path / "orders.jsonl", orders)
    write_lines(tmp_path / "payments.jsonl", payments)
    (tmp_path / "own_fns.py").write_text(CLEAN)
    cfg = config(tmp_path, kind, left)
    with Daemon(cfg, tmp_path) as d:
        assert d.wait(90) == 0, d.stderr[-3000:]
    rows = [r for rs in window_files(tmp_path / "out").values() for r in rs]
    assert sorted((r["n"], r["p"]) for r in rows) == reference(kind, orders, payments)
    assert all(r["cleaned"] is True and r["amount"] == r["n"] * 100 for r in rows)  # the orders' side was cleaned
    assert not (tmp_path / "dead.jsonl").exists() or read_jsonl(tmp_path / "dead.jsonl") == []


@pytest.mark.parametrize("left", ["orders", "clean"])
def test_a_side_is_named_by_its_source_or_its_own_stage(tmp_path, left):
    (tmp_path / "own_fns.py").write_text(CLEAN)
    for name in ("orders.jsonl", "payments.jsonl"):
        (tmp_path / name).write_text("")
    res = run_cli("validate", "-c", str(config(tmp_path, "join", left=left)))
    assert res.returncode == 0, res.stderr
    assert "join (inner): orders.order_id = payments.order_id" in res.stdout
    res = run_cli("validate", "-c", str(config(tmp_path, "join", left="payments")))
    assert res.returncode == 2
    assert "stages.match.right: the same input as left ('payments'): a join needs two" in res.stderr
