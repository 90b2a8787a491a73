"""No row lost to a table sink's upsert key, through the real daemon, against an independent
computation: rows without a key (a join's pairs, raw records of a window) replace their window
whole, so every row is kept and a replay (a second run, a SIGKILL and restart) leaves exactly the
same rows; a `key_columns` that is not unique in a window sends the rows it cannot tell apart to the
dead letters with why, instead of keeping one of them."""

from __future__ import annotations

import random
import signal
import sqlite3
import threading
import time
from collections import Counter

import pytest

from rtstream.model.window import iso_utc as iso  # formatting only: the windows are computed here
from tests.data import BASE_MS, write_lines
from tests.support import LOOPS, Daemon, kill_mid_feed, read_jsonl, run_cli, wait_until, write_config

MINUTE = 60_000


def orders_and_payments(seed: int) -> tuple[list[dict], list[dict]]:
    """Orders over 10 minutes, each paid 0-3 times a few seconds later (sometimes in the next minute)."""
    rnd = random.Random(seed)
    orders, payments = [], []
    for i in range(60):
        ts = BASE_MS + i * 10_000 + rnd.randint(0, 900)
        orders.append({"order_id": i, "customer": f"c{rnd.randint(1, 5)}", "amount": rnd.randint(1, 99), "ts": ts})
        for _ in range(rnd.choice([0, 1, 2, 2, 3])):
            payments.append({"order_id": i, "paid": rnd.randint(1, 99), "ts": ts + rnd.randint(100, 9000)})
    payments.sort(key=lambda p: p["ts"])
    return orders, payments


def join_reference(orders: list[dict], payments: list[dict]) -> Counter:
    """(order_id, amount, paid, window_start) of every order and payment of one order in one minute."""
    return Counter((o["order_id"], o["amount"], p["paid"], iso(o["ts"] - o["ts"] % MINUTE))
                   for o in orders for p in payments
                   if p["order_id"] == o["order_id"] and p["ts"] // MINUTE == o["ts"] // MINUTE)


def join_config(tmp_path, **sink) -> object:
    doc = {
        "pipeline": {"name": "joined", "flow": "[orders, payments] >> match >> db"},
        "window": {"size": "1m", "lateness": "0s"},
        "sources": {"orders": {"type": "file", "path": str(tmp_path / "orders.jsonl")},
                    "payments": {"type": "file", "path": str(tmp_path / "payments.jsonl")}},
        "stages": {"match": {"type": "join", "left": "orders", "right": "payments", "on": "order_id"}},
        "sinks": {"db": {"type": "sqlite", "path": str(tmp_path / "out.db"), "table": "matched", **sink}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state")},
    }
    return write_config(tmp_path / "join.toml", doc)


def table(path, sql: str) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


@pytest.mark.parametrize("seed", [1, 2])
def test_a_join_into_sqlite_keeps_every_pair_and_a_replay_leaves_the_same_rows(tmp_path, seed):
    orders, payments = orders_and_payments(seed)
    write_lines(tmp_path / "orders.jsonl", orders)
    write_lines(tmp_path / "payments.jsonl", payments)
    want = join_reference(orders, payments)
    assert max(Counter(k[3] for k in want).values()) > 1  # windows of several pairs: the case that lost rows
    cfg = join_config(tmp_path)
    for run in range(2):  # the second run replays every window from the start (a fresh state dir)
        res = run_cli("run", "-c", str(cfg), timeout=120)
        assert res.returncode == 0, res.stderr[-3000:]
        got = Counter(table(tmp_path / "out.db", "select order_id, amount, paid, window_start from matched"))
        assert got == want, f"run {run}"
        assert not read_jsonl(tmp_path / "dead.jsonl")
        (tmp_path / "state").rename(tmp_path / f"state-{run}")


def test_a_key_columns_shared_by_two_rows_of_a_window_dead_letters_them_with_why(tmp_path):
    orders, payments = orders_and_payments(3)
    write_lines(tmp_path / "orders.jsonl", orders)
    write_lines(tmp_path / "payments.jsonl", payments)
    want = join_reference(orders, payments)
    per_order = Counter((k[0], k[3]) for k in want.elements())
    cfg = join_config(tmp_path, key_columns=["window_start", "order_id"])
    res = run_cli("run", "-c", str(cfg), timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    got = Counter(table(tmp_path / "out.db", "select order_id, amount, paid, window_start from matched"))
    assert got == Counter({k: n for k, n in want.items() if per_order[(k[0], k[3])] == 1})
    dead = read_jsonl(tmp_path / "dead.jsonl")
    shared = Counter({k: n for k, n in want.items() if per_order[(k[0], k[3])] > 1})
    assert sum(shared.values()) > 0
    assert Counter((d["value"]["order_id"], d["value"]["amount"], d["value"]["paid"], d["value"]["window_start"])
                   for d in dead) == shared
    for d in dead:
        assert (d["reason"], d["stage"]) == ("sink_rejected", "db")
        n = per_order[(d["value"]["order_id"], d["value"]["window_start"])]
        assert (f"{n} rows of this window share the key (window_start, order_id) = "
                f"({d['value']['window_start']!r}, {d['value']['order_id']})") in d["detail"], d
        assert "make key_columns unique per row" in d["detail"]


def raw_config(tmp_path, src) -> object:
    doc = {
        "pipeline": {"name": "raw", "flow": "tail >> db"},
        "window": {"size": "10s", "lateness": "2s"},
        "sources": {"tail": {"type": "file", "path": str(src), "follow": True, "poll_interval": "20ms",
                             "batch_size": 25}},
        "sinks": {"db": {"type": "sqlite", "path": str(tmp_path / "out.db"), "table": "raw"}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms"},
    }
    return write_config(tmp_path / "raw.toml", doc)


@pytest.mark.parametrize("seed", range(LOOPS))
def test_raw_windows_into_sqlite_after_a_sigkill_and_restart_hold_each_record_once(tmp_path, seed):
    rnd = random.Random(seed)
    n = 1500
    # in time order but for a jitter under the lateness, 5-20 records a second: many rows per window
    evs = [{"id": i, "u": f"u{rnd.randint(1, 9)}", "ts": BASE_MS + i * 100 + rnd.randint(0, 1500)} for i in range(n)]
    last_start = max(e["ts"] for e in evs) // 10_000 * 10_000
    # the windows the watermark closes; the last ones stay open in a followed file
    want = Counter((e["id"], iso(e["ts"] // 10_000 * 10_000)) for e in evs if e["ts"] < last_start - 10_000)
    src = tmp_path / "in.jsonl"
    write_lines(src, evs[:300])
    cfg = raw_config(tmp_path, src)
    pos_file = tmp_path / "state" / "positions" / "tail.json"
    fed = threading.Event()

    def feed() -> None:  # records keep arriving, so the kill lands mid-stream
        for i in range(300, 1100, 25):
            write_lines(src, evs[i:i + 25], mode="ab")
            time.sleep(0.01)
        fed.set()

    def got() -> Counter:
        if not (tmp_path / "out.db").exists():
            return Counter()
        try:
            return Counter(table(tmp_path / "out.db", "select id, window_start from raw"))
        except sqlite3.OperationalError:  # the table is not made yet
            return Counter()

    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: len(got()) > 50, 30, what="first windows")
        kill_mid_feed(d, feed, pos_file, rnd.uniform(0, 0.4))
    assert fed.is_set()
    write_lines(src, evs[1100:], mode="ab")
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: set(want) <= set(got()), 60, what="every closed window of the data")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    rows = got()
    assert +(rows - Counter({k: 1 for k in rows})) == Counter(), "a record written twice"
    assert {k: v for k, v in rows.items() if k in want} == dict(want)
    assert not read_jsonl(tmp_path / "dead.jsonl")


SIZE = 5


def same_second_events(seed: int, n: int) -> list[dict]:
    """Records of a few users, many per second: a user's count windows often share their earliest time."""
    rnd = random.Random(seed)
    return [{"user": f"u{rnd.randint(1, 4)}", "ts": BASE_MS + 1000 * (i // 40), "v": rnd.randint(-50, 50)}
            for i in range(n)]


def count_reference(evs: list[dict]) -> Counter:
    """(user, window_start, n, total) of each full window: per user, in file order, every SIZE records."""
    by_user: dict[str, list[dict]] = {}
    for e in evs:
        by_user.setdefault(e["user"], []).append(e)
    return Counter((u, iso(min(e["ts"] for e in items[i:i + SIZE])), SIZE, sum(e["v"] for e in items[i:i + SIZE]))
                   for u, items in by_user.items() for i in range(0, len(items) - len(items) % SIZE, SIZE))


def count_config(tmp_path, src, follow: bool) -> object:
    doc = {
        "pipeline": {"name": "counts", "flow": "tail >> per_user >> [files, db]"},
        "window": {"type": "count", "size": SIZE},
        "sources": {"tail": {"type": "file", "path": str(src), "follow": follow, "poll_interval": "20ms",
                             "batch_size": 30}},
        "stages": {"per_user": {"type": "aggregate", "key": "user",
                                "aggregates": {"n": "count()", "total": "sum(v)"}}},
        "sinks": {"files": {"type": "file", "path": str(tmp_path / "out")},
                  "db": {"type": "sqlite", "path": str(tmp_path / "out.db"), "table": "counts"}},
        "state": {"checkpoint_interval": "300ms"},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "commit_interval": "100ms"},
    }
    return write_config(tmp_path / "counts.toml", doc)


def file_rows(tmp_path) -> Counter:
    out: Counter = Counter()
    for path in (tmp_path / "out").glob("*.jsonl"):
        for r in read_jsonl(path):
            if "window_id" in r:  # the file is named after its window's first record
                assert path.name.endswith(f".{r['user']}.{r['window_id'].replace('/', '-')}.jsonl"), path.name
            out[(r["user"], r["window_start"], r["n"], r["total"])] += 1
    return out


def db_rows(tmp_path) -> Counter:
    try:
        return Counter(table(tmp_path / "out.db", "select user, window_start, n, total from counts"))
    except sqlite3.OperationalError:  # not made yet
        return Counter()


def full(rows: Counter) -> Counter:
    return Counter({k: v for k, v in rows.items() if k[2] == SIZE})


def test_count_windows_of_one_key_sharing_their_start_are_each_kept_by_file_and_sqlite(tmp_path):
    # the finding's case: 12 records of one key at one time make windows of 5, 5 and 2
    src = tmp_path / "in.jsonl"
    write_lines(src, [{"user": "x", "ts": BASE_MS, "v": i} for i in range(12)])
    res = run_cli("run", "-c", str(count_config(tmp_path, src, follow=False)), timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    start = iso(BASE_MS)
    want = Counter({("x", start, 5, 10): 1, ("x", start, 5, 35): 1, ("x", start, 2, 21): 1})
    assert file_rows(tmp_path) == want
    assert db_rows(tmp_path) == want
    assert len(list((tmp_path / "out").glob("*.jsonl"))) == 3
    lines = src.read_bytes().splitlines(keepends=True)
    firsts = [len(b"".join(lines[:i])) for i in (0, 5, 10)]  # each window's first record: its byte offset
    assert sorted(table(tmp_path / "out.db", "select window_id, n from counts")) == sorted(
        [(f"tail/0@{firsts[0]}", 5), (f"tail/0@{firsts[1]}", 5), (f"tail/0@{firsts[2]}", 2)])


@pytest.mark.parametrize("seed", range(LOOPS))
def test_count_windows_sharing_their_start_after_a_sigkill_and_restart_are_those_of_one_run(tmp_path, seed):
    rnd = random.Random(seed)
    evs = same_second_events(seed, 2000)
    want = count_reference(evs)
    assert max(Counter((k[0], k[1]) for k in want.elements()).values()) > 1  # windows share their start
    src = tmp_path / "in.jsonl"
    write_lines(src, evs[:300])
    cfg = count_config(tmp_path, src, follow=True)
    pos_file = tmp_path / "state" / "positions" / "tail.json"
    fed = threading.Event()

    def feed() -> None:
        for i in range(300, 1400, 25):
            write_lines(src, evs[i:i + 25], mode="ab")
            time.sleep(0.01)
        fed.set()

    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: len(db_rows(tmp_path)) >= 3, 30, what="first count windows")
        kill_mid_feed(d, feed, pos_file, rnd.uniform(0, 0.3))
    assert fed.is_set()
    write_lines(src, evs[1400:], mode="ab")
    with Daemon(cfg, tmp_path) as d:
        wait_until(lambda: full(db_rows(tmp_path)) == want and full(file_rows(tmp_path)) == want, 60,
                   what="every full count window in both sinks")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    assert full(db_rows(tmp_path)) == want
    assert full(file_rows(tmp_path)) == want
    assert not read_jsonl(tmp_path / "dead.jsonl")


KEYED_FNS = '''
def add(state, record):
    total = (state or 0) + record["amount"]
    return total, {"customer_id": record["customer_id"], "running_total": total, "ts": record["ts"]}
'''


def test_a_keyed_stage_into_sqlite_keeps_every_output_and_a_replay_the_same(tmp_path):
    rnd = random.Random(11)
    evs = [{"customer_id": rnd.choice("abc"), "amount": rnd.randint(1, 20), "ts": BASE_MS + i * 7000}
           for i in range(40)]
    write_lines(tmp_path / "orders.jsonl", evs)
    (tmp_path / "keyed_fns.py").write_text(KEYED_FNS)
    totals: dict[str, int] = {}
    want: Counter = Counter()
    for e in evs:  # the running total per customer, in file order: one output per record
        totals[e["customer_id"]] = totals.get(e["customer_id"], 0) + e["amount"]
        want[(e["customer_id"], totals[e["customer_id"]], iso(e["ts"] - e["ts"] % MINUTE))] += 1
    doc = {
        "pipeline": {"name": "keyedrows", "flow": "orders >> running >> db"},
        "window": {"size": "1m"},
        "state": {"checkpoint_interval": "10s"},
        "sources": {"orders": {"type": "file", "path": str(tmp_path / "orders.jsonl")}},
        "stages": {"running": {"type": "keyed", "key": "customer_id", "function": "keyed_fns:add"}},
        "sinks": {"db": {"type": "sqlite", "path": str(tmp_path / "out.db"), "table": "totals"}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state")},
    }
    cfg = write_config(tmp_path / "keyed.toml", doc)
    for run in range(2):
        res = run_cli("run", "-c", str(cfg), timeout=120)
        assert res.returncode == 0, res.stderr[-3000:]
        got = Counter(table(tmp_path / "out.db", "select customer_id, running_total, window_start from totals"))
        assert got == want, f"run {run}"
        assert not read_jsonl(tmp_path / "dead.jsonl")
        (tmp_path / "state").rename(tmp_path / f"state-{run}")


def test_a_branched_flow_keeps_count_windows_sharing_a_start_and_every_raw_record(tmp_path):
    src = tmp_path / "in.jsonl"
    evs = [{"id": i, "user": "x", "ts": BASE_MS + 10_000 * (i // 6), "v": i} for i in range(12)]
    write_lines(src, evs)
    (tmp_path / "branch_fns.py").write_text("def tag(record):\n    return {**record, 'seen': True}\n")
    doc = {
        "pipeline": {"name": "branched", "flow": "ev >> per5 >> db5\nev >> per_10s >> dbraw"},
        "window": {"size": "10s"},
        "state": {"checkpoint_interval": "1s"},
        "sources": {"ev": {"type": "file", "path": str(src)}},
        "stages": {"per5": {"type": "aggregate", "key": "user", "aggregates": {"n": "count()", "total": "sum(v)"},
                            "window": {"type": "count", "size": 5}},
                   "per_10s": {"type": "map", "call": "branch_fns:tag"}},
        "sinks": {"db5": {"type": "sqlite", "path": str(tmp_path / "out.db"), "table": "counts"},
                  "dbraw": {"type": "sqlite", "path": str(tmp_path / "out.db"), "table": "raw"}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state")},
    }
    cfg = write_config(tmp_path / "b.toml", doc)
    for run in range(2):  # the second run replays every window (a fresh state dir)
        res = run_cli("run", "-c", str(cfg), timeout=120)
        assert res.returncode == 0, res.stderr[-3000:]
        start = iso(BASE_MS)  # records 0-5 at 00:00:00, 6-11 at 00:00:10: the first two windows share it
        assert Counter(table(tmp_path / "out.db", "select user, window_start, n, total from counts")) == Counter(
            {("x", start, 5, 10): 1, ("x", start, 5, 35): 1, ("x", iso(BASE_MS + 10_000), 2, 21): 1}), f"run {run}"
        assert Counter(table(tmp_path / "out.db", "select id, window_start from raw")) == Counter(
            (e["id"], iso(e["ts"] // 10_000 * 10_000)) for e in evs), f"run {run}"
        assert not read_jsonl(tmp_path / "dead.jsonl")
        (tmp_path / "state").rename(tmp_path / f"state-{run}")


def test_rows_whose_key_columns_are_null_are_dead_lettered_not_added_twice_by_a_replay(tmp_path):
    evs = [{"id": i if i % 4 else None, "ts": BASE_MS + i * 1000} for i in range(20)]
    evs[5].pop("id")  # missing, not null: the same to a table
    write_lines(tmp_path / "in.jsonl", evs)
    doc = {
        "pipeline": {"name": "nullkeys", "flow": "ev >> db"},
        "window": {"size": "10s"},
        "sources": {"ev": {"type": "file", "path": str(tmp_path / "in.jsonl")}},
        "sinks": {"db": {"type": "sqlite", "path": str(tmp_path / "out.db"), "table": "t", "key_columns": ["id"]}},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state")},
    }
    cfg = write_config(tmp_path / "n.toml", doc)
    for run in range(2):  # the second run replays every window (a fresh state dir)
        res = run_cli("run", "-c", str(cfg), timeout=120)
        assert res.returncode == 0, res.stderr[-3000:]
        assert Counter(r for (r,) in table(tmp_path / "out.db", "select cast(id as integer) from t")) == Counter(
            e["id"] for e in evs if e.get("id") is not None), f"run {run}"
        dead = read_jsonl(tmp_path / "dead.jsonl")
        assert sorted(d["value"]["ts"] for d in dead) == sorted([e["ts"] for e in evs if e.get("id") is None] * (run + 1))
        assert all(d["detail"] == "key column 'id' is null or missing in this row: an upsert by (id) cannot find it "
                                  "again, so a replay would add it twice" for d in dead)
        (tmp_path / "state").rename(tmp_path / f"state-{run}")
