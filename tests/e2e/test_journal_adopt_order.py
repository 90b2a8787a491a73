"""Marks journaled before a commit round are adopted once every source's checkpoint is back.

The state a SIGKILL leaves between saving the round's journal (rtstream.runtime.written_marks) and
the first source's commit, made deterministic: a clean stop checkpoints window 00:06 open in both
sources of a left interval join, then the journal is set to what the next round would have saved
(that window written, orders read one record past its checkpoint, payments nothing). The restart
adopts orders' mark. Adopted source by source, orders (restored first) saw none of payments' open
windows, dropped its share of 00:06, and payments' restored share was written alone over the
window: its lone rows lost (test_interval_left_join.py's SIGKILL test, 1 run in 70, likelier under
load). Now the window is folded again from both shares and written whole."""

from __future__ import annotations

import pickle
import signal
import sqlite3
from pathlib import Path

import orjson

from tests.data import BASE_MS, write_lines
from tests.e2e.test_interval_left_join import closers, config, data, no_dead_letters, reference, written
from tests.support import Daemon, wait_until

CUT = BASE_MS + 7 * 60_000 + 10_000  # window 00:06 closes at 00:07 + upper + lateness: still open here


def checkpoints(state: Path) -> dict[str, tuple[int, bytes]]:
    if not (state / "checkpoints.db").exists():
        return {}  # not before the daemon made it
    try:
        with sqlite3.connect(f"file:{state / 'checkpoints.db'}?mode=ro", uri=True) as db:
            return {s: (p, b) for s, p, b in db.execute("select source, position, state from checkpoints")}
    except sqlite3.OperationalError:  # its table not there yet
        return {}


def test_a_journaled_mark_is_adopted_after_every_source_is_restored(tmp_path):
    orders, payments = data(67)
    want = reference(orders, payments)
    # each file up to its first row at CUT (arrival is by time, within the lateness)
    o1 = orders[:next(i for i, o in enumerate(orders) if o["ts"] >= CUT)]
    p1 = payments[:next(i for i, p in enumerate(payments) if p["ts"] >= CUT)]
    write_lines(tmp_path / "orders.jsonl", o1)
    write_lines(tmp_path / "payments.jsonl", [])
    cfg = config(tmp_path)
    state = tmp_path / "state"
    with Daemon(cfg, tmp_path) as d:
        # orders wholly read before any payment: a pair is folded into the partition of the row that
        # made it, so every pair is payments' and every lone row orders' (read interleaved, window
        # 00:06 could be one side's alone: CI, 1 run in 16)
        size = (tmp_path / "orders.jsonl").stat().st_size
        wait_until(lambda: checkpoints(state).get("orders", (0,))[0] == size, 60, what="orders checkpointed")
        write_lines(tmp_path / "payments.jsonl", p1, mode="ab")
        wait_until(lambda: len(list((tmp_path / "out").glob("*"))) >= 6, 60, what="windows 00:00 to 00:05")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    sizes = {s: (tmp_path / f"{s}.jsonl").stat().st_size for s in ("orders", "payments")}
    saved = checkpoints(state)
    assert {s: p for s, (p, _) in saved.items()} == sizes, saved.keys()  # everything read is checkpointed
    six = BASE_MS + 6 * 60_000
    assert all(six in pickle.loads(blob)["panes"] for _, blob in saved.values())  # noqa: S301 - our own
    assert not (tmp_path / "out" / "2026-01-01T00-06-00Z.jsonl").exists()
    journals = list((state / "positions").glob("written-marks.*.json"))
    assert len(journals) == 1, "no journal of a round committing both sources"
    journal = journals[0]
    pairs = orjson.loads(journal.read_bytes())["pairs"]
    written_upto = BASE_MS + 7 * 60_000 + 1_200
    pairs["orders\t0"] = [pairs["orders\t0"][0], written_upto, sizes["orders"] + 1]
    pairs["payments\t0"] = [pairs["payments\t0"][0], written_upto, sizes["payments"]]
    journal.write_bytes(orjson.dumps({"pairs": pairs}))

    co, cp = closers()
    write_lines(tmp_path / "orders.jsonl", [*orders[len(o1):], co], mode="ab")
    write_lines(tmp_path / "payments.jsonl", [*payments[len(p1):], cp], mode="ab")
    with Daemon(cfg, tmp_path) as d:
        try:
            wait_until(lambda: len(written(tmp_path)) >= len(want), 60, what="every row")
        except AssertionError:
            got = written(tmp_path)
            raise AssertionError(f"{len(got)} rows of {len(want)}: missing {sorted(set(want) - set(got))[:10]}") from None
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    assert "orders: 0 reads on from" in d.stderr and "below the mark saved before its commit" in d.stderr, d.stderr[-3000:]
    assert written(tmp_path) == want
    no_dead_letters(tmp_path)
