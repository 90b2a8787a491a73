"""interval_join how = "left" through the real daemon: orders and payments (out of order within
lateness) joined on user_id with a payment in [order - 5s, order + 20s]; every pair once and every
order without a payment once, alone, checked against an independent reference; then a SIGKILL
mid-stream and a restart from the checkpoints leave the same output."""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.data import BASE_MS, write_lines
from tests.support import LOOPS, Daemon, kill_mid_feed, wait_until, window_files, write_config

LOWER, UPPER, LATENESS = -5_000, 20_000, 3_000


def config(tmp_path: Path) -> Path:
    follow = {"type": "file", "follow": True, "poll_interval": "20ms", "batch_size": 50}
    doc = {
        "pipeline": {"name": "left", "flow": "[orders, payments] >> paid >> out"},
        "window": {"size": "1m", "lateness": "3s", "idle_timeout": "1h"},
        "sources": {"orders": follow | {"path": str(tmp_path / "orders.jsonl")},
                    "payments": follow | {"path": str(tmp_path / "payments.jsonl")}},
        "stages": {"paid": {"type": "interval_join", "left": "orders", "right": "payments", "on": "user_id",
                            "lower": "-5s", "upper": "20s", "how": "left"}},
        "sinks": {"out": {"type": "file", "path": str(tmp_path / "out")}},
        "state": {"checkpoint_interval": "300ms"},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms"},
    }
    return write_config(tmp_path / "left.toml", doc)


def data(seed: int, n: int = 1200) -> tuple[list[dict], list[dict]]:
    rnd = random.Random(seed)
    orders = [{"user_id": f"u{rnd.randrange(40)}", "ts": BASE_MS + rnd.randrange(600_000), "order": i}
              for i in range(n)]
    payments = [{"user_id": f"u{rnd.randrange(40)}", "ts": BASE_MS + rnd.randrange(600_000), "pay": i}
                for i in range(n)]

    def arrival(rows: list[dict]) -> list[dict]:  # out of order, each within the lateness
        return [r for _, r in sorted(((r["ts"] + rnd.randrange(LATENESS - 500), r) for r in rows), key=lambda p: p[0])]

    return arrival(orders), arrival(payments)


def reference(orders: list[dict], payments: list[dict]) -> list[tuple]:
    out = []
    for o in orders:
        found = [p for p in payments if p["user_id"] == o["user_id"] and o["ts"] + LOWER <= p["ts"] <= o["ts"] + UPPER]
        out += [(o["order"], p["pay"], max(o["ts"], p["ts"])) for p in found] or [(o["order"], None, o["ts"])]
    return sorted(out, key=repr)


def written(tmp_path: Path) -> list[tuple]:
    out = []
    for rows in window_files(tmp_path / "out").values():
        for r in rows:
            if r["user_id"] == "closer":
                continue
            if "pay" not in r:
                assert set(r) == {"user_id", "ts", "order", "window_start", "window_end"}, r
            out.append((r["order"], r.get("pay"), r["ts"]))
    return sorted(out, key=repr)


def closers() -> tuple[dict, dict]:
    far = BASE_MS + 3_600_000  # closes every window of the data
    return {"user_id": "closer", "ts": far, "order": -1}, {"user_id": "closer", "ts": far, "pay": -1}


def no_dead_letters(tmp_path: Path) -> None:
    dead = tmp_path / "dead.jsonl"
    assert not dead.exists() or not dead.read_text().strip(), dead.read_text()[:2000]


def test_left_interval_join_through_the_daemon_matches_the_reference(tmp_path):
    orders, payments = data(3)
    co, cp = closers()
    write_lines(tmp_path / "orders.jsonl", [*orders, co])
    write_lines(tmp_path / "payments.jsonl", [*payments, cp])
    want = reference(orders, payments)
    assert sum(1 for w in want if w[1] is None) > 50 and sum(1 for w in want if w[1] is not None) > 500
    with Daemon(config(tmp_path), tmp_path) as d:
        wait_until(lambda: len(written(tmp_path)) >= len(want), 60, what="every row")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    assert written(tmp_path) == want
    no_dead_letters(tmp_path)


@pytest.mark.parametrize("seed", range(LOOPS))
def test_sigkill_mid_state_then_restart_gives_the_uninterrupted_output(tmp_path, seed):
    orders, payments = data(50 + seed)
    want = reference(orders, payments)
    write_lines(tmp_path / "orders.jsonl", orders[:200])
    write_lines(tmp_path / "payments.jsonl", payments[:200])
    cfg = config(tmp_path)
    pos_file = tmp_path / "state" / "positions" / "orders.json"
    fed = threading.Event()

    def feed() -> None:  # both sides keep arriving while the daemon runs: the kill lands mid-state
        for i in range(200, 900, 25):
            write_lines(tmp_path / "orders.jsonl", orders[i:i + 25], mode="ab")
            write_lines(tmp_path / "payments.jsonl", payments[i:i + 25], mode="ab")
            time.sleep(0.03)
        fed.set()

    with Daemon(cfg, tmp_path) as d:
        kill_mid_feed(d, feed, pos_file, random.Random(seed).uniform(0, 0.4))
    assert fed.is_set()
    co, cp = closers()
    write_lines(tmp_path / "orders.jsonl", [*orders[900:], co], mode="ab")
    write_lines(tmp_path / "payments.jsonl", [*payments[900:], cp], mode="ab")
    with Daemon(cfg, tmp_path) as d:
        try:
            wait_until(lambda: len(written(tmp_path)) >= len(want), 60, what="every row")
        except AssertionError:  # say what is missing, and where the restart read on from
            got = written(tmp_path)
            raise AssertionError(f"{len(got)} rows of {len(want)}: missing {sorted(set(want) - set(got))[:10]}\n"
                                 + "\n".join(x for x in d.stderr.splitlines() if "checkpoint" in x)) from None
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    # the commit never passes the last checkpoint: a restart always restores whether each row matched
    assert "from its checkpoint" in d.stderr, d.stderr[-3000:]
    assert written(tmp_path) == want
    no_dead_letters(tmp_path)
