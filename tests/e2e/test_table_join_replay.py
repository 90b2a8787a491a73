"""table_join in event time with the real daemon over files (FINDINGS item 9): the same rows whichever
source is read first, ttl at the order's time, and a followed changelog that goes quiet does not hold
the orders forever. Checked against tests/table_join_reference.py."""

from __future__ import annotations

import random
import signal
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.data import BASE_MS
from tests.support import Daemon, read_jsonl, run_cli, wait_until, window_files, write_config
from tests.table_join_reference import as_of

MIN = 60_000
# the stranger's data: orders of customers a, b, c; b's tier set at 00:00, a's at 00:03
ORDERS = [{"order_id": 1, "customer_id": "a", "amount": 10, "ts": BASE_MS + 30_000},
          {"order_id": 2, "customer_id": "b", "amount": 20, "ts": BASE_MS + 90_000},
          {"order_id": 3, "customer_id": "c", "amount": 30, "ts": BASE_MS + 2 * MIN},
          {"order_id": 4, "customer_id": "a", "amount": 40, "ts": BASE_MS + 3 * MIN + 30_000},
          {"order_id": 5, "customer_id": "b", "amount": 50, "ts": BASE_MS + 6 * MIN}]
CUSTOMERS = [{"customer_id": "b", "tier": "silver", "ts": BASE_MS},
             {"customer_id": "a", "tier": "platinum", "ts": BASE_MS + 3 * MIN}]


def config(tmp_path: Path, follow: bool = False) -> Path:
    return write_config(tmp_path / "tj.toml", {
        "pipeline": {"name": "t4", "flow": "[orders, customers] >> enrich >> out"},
        "window": {"size": "1m", "lateness": "5s", "idle_timeout": "1s"},
        "state": {"checkpoint_interval": "10s"},
        "sources": {"orders": {"type": "file", "path": str(tmp_path / "orders.jsonl")},
                    "customers": {"type": "file", "path": str(tmp_path / "customers.jsonl"), "follow": follow}},
        "stages": {"enrich": {"type": "table_join", "stream": "orders", "table": "customers", "on": "customer_id",
                              "how": "left", "ttl": "5m"}},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out"), "fsync": False}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "shutdown_grace": "10s"},
    })


def write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


def output(tmp_path: Path) -> list[dict[str, Any]]:
    rows = [{k: v for k, v in r.items() if k not in ("window_start", "window_end")}
            for rs in window_files(tmp_path / "out").values() for r in rs]
    return sorted(rows, key=lambda r: r["order_id"])


def want(orders: list[dict[str, Any]], customers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(as_of(customers, orders, "left", 5 * MIN, key="customer_id", names=("tier",)),
                  key=lambda r: r["order_id"])


@pytest.mark.parametrize("padding", [0, 20_000])
def test_both_files_finite_give_the_as_of_rows_whichever_is_read_first(tmp_path: Path, padding: int) -> None:
    """padding: the changelog starts with that many changes of other customers, so the orders are read
    well before the table's changes that matter (the stranger's run 1 enriched no order at all)."""
    customers = [{"customer_id": f"x{i}", "tier": "t", "ts": BASE_MS} for i in range(padding)] + CUSTOMERS
    write(tmp_path / "orders.jsonl", ORDERS)
    write(tmp_path / "customers.jsonl", customers)
    done = run_cli("run", "-c", str(config(tmp_path)), timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    got = output(tmp_path)
    assert got == want(ORDERS, customers)
    # order 1 (00:00:30) is before a's change of 00:03; order 5 (00:06) is past b's ttl of 5m
    assert [r.get("tier") for r in got] == [None, "silver", None, "platinum", None]
    assert read_jsonl(tmp_path / "dead.jsonl") == []


def test_a_replay_of_random_changes_and_orders_gives_the_as_of_rows(tmp_path: Path) -> None:
    rnd = random.Random(5)
    customers = [{"customer_id": f"c{rnd.randrange(30)}", "tier": f"t{i}", "ts": BASE_MS + i * 1_000}
                 for i in range(600)]
    orders = sorted(({"order_id": i, "customer_id": f"c{rnd.randrange(35)}", "amount": i,
                      "ts": BASE_MS + rnd.randrange(12 * MIN)} for i in range(3_000)), key=lambda o: o["ts"])
    write(tmp_path / "orders.jsonl", orders)
    write(tmp_path / "customers.jsonl", customers)
    for run in range(2):  # a replay from scratch gives the same rows
        done = run_cli("run", "-c", str(config(tmp_path)), timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        assert output(tmp_path) == want(orders, customers), f"run {run}"
        for p in (tmp_path / "state", tmp_path / "out"):
            for f in sorted(p.rglob("*"), reverse=True):
                f.unlink() if f.is_file() else f.rmdir()


def test_a_quiet_followed_changelog_lets_the_orders_go_after_idle_timeout(tmp_path: Path) -> None:
    """The table never ends (followed) and goes quiet: its watermark follows the wall clock after
    idle_timeout, as any idle source's, so every order is joined and written, as of its time."""
    write(tmp_path / "orders.jsonl", ORDERS)
    write(tmp_path / "customers.jsonl", CUSTOMERS)
    with Daemon(config(tmp_path, follow=True), tmp_path) as d:
        wait_until(lambda: len(output(tmp_path)) == len(ORDERS), 60, what="every order written")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    assert output(tmp_path) == want(ORDERS, CUSTOMERS)
