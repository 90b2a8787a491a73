"""Windows flushed as one group (rtstream.runtime.flush_group): every window is written, dead-lettered,
recorded and released exactly as when flushed one by one; only the run history's transactions are shared."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

import orjson
import pytest

from rtstream.engine.emission import Emission
from rtstream.model.policy import Policy
from rtstream.model.window import Window
from rtstream.runtime.dead_letter_file import DeadLetterFile
from rtstream.runtime.flush import WindowFlusher
from rtstream.runtime.flush_group import GROUP_MAX, flush_group, take_group
from rtstream.runtime.run_history import RunHistory
from rtstream.sinks.base import Sink
from rtstream.stages.base import Stage

BASE = 1_767_225_600_000


class ListSink(Sink):
    """A real sink keeping what it was given; it fails on the keys in `fails` (each `times` attempts,
    for ever when None)."""

    where = None

    def __init__(self, fails: set[str] = frozenset(), times: int | None = None, delay: float = 0.0):  # type: ignore[assignment]
        super().__init__("out", None, None)
        self.written: list[tuple[Any, list[dict[str, Any]]]] = []
        self.fails, self.times, self.delay = fails, times, delay
        self.attempts: dict[Any, int] = {}

    async def write(self, window: Window, rows: list[dict[str, Any]]) -> None:
        self.attempts[window.key] = self.attempts.get(window.key, 0) + 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if window.key in self.fails and (self.times is None or self.attempts[window.key] <= self.times):
            raise ConnectionError(f"no room for {window.key}")
        self.written.append((window.key, rows))


class GroupSink(ListSink):
    """The same sink taking a group's windows in one call (as the python sink does), stopping at the
    first window that fails."""

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.calls: list[int] = []

    async def write_windows(self, items: list[tuple[Window, list[dict[str, Any]]]]) -> tuple[int, BaseException | None]:
        self.calls.append(len(items))
        for i, (window, rows) in enumerate(items):
            try:
                await self.write(window, rows)
            except Exception as exc:  # noqa: BLE001 - handed to the flusher's policy
                return i, exc
        return len(items), None


SINKS = pytest.mark.parametrize("sink_class", [ListSink, GroupSink])


def sessions(n: int) -> list[Emission]:
    out = []
    for i in range(n):
        key = f"u{i}"
        start = BASE + i * 1000
        rows = [{"bidder": key, "n": i + 1}]
        out.append(Emission(i, Window(start, start + 10_000, rows, key, i + 1), rows, [(("s", 0), i)]))
    return out


class Doubling(Stage):
    """A window stage doubling each row's count; it raises on the keys in `fails`."""

    def __init__(self, fails: set[str]):
        super().__init__("double", None, None)
        self.fails = fails

    async def run(self, window: Window, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if window.key in self.fails:
            raise ValueError(f"cannot double {window.key}")
        return [{**r, "n": r["n"] * 2} for r in rows]


def flusher(tmp_path, sink: Sink, on_failure: str = "dead_letter",
            stages: list[Stage] = ()) -> tuple[WindowFlusher, list[int], RunHistory]:
    released: list[int] = []
    history = RunHistory(tmp_path / "runs.db")
    dead = DeadLetterFile(tmp_path / "dead.jsonl")
    policies = {"out": Policy(retries=1, retry_delay=0.01, max_retry_delay=0.02, timeout=None, on_failure=on_failure),
                "agg": Policy(retries=0, retry_delay=0.01, max_retry_delay=0.01, timeout=None,
                              on_failure="dead_letter"),
                "double": Policy(retries=0, retry_delay=0.01, max_retry_delay=0.01, timeout=None,
                                 on_failure="dead_letter")}
    f = WindowFlusher(list(stages), [sink], dead, lambda em: released.append(em.id), policies, history=history,
                      first_stage="agg")
    return f, released, history


def runs_table(path) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return sorted(db.execute("SELECT window_start, window_end, component, kind, state, attempts, records, "
                                 "error FROM runs").fetchall())
    finally:
        db.close()


def transactions(history: RunHistory) -> list[int]:
    """Counts the commits the history makes (sqlite's total_changes cannot tell transactions apart)."""
    seen = [0]
    history._db.set_trace_callback(lambda sql: seen.__setitem__(0, seen[0] + (sql.strip().upper() == "COMMIT")))
    return seen


async def grouped_and_alone(tmp_path, make_sink, n, on_failure="dead_letter", stages=()):
    out = {}
    for how in ("alone", "grouped"):
        d = tmp_path / how
        d.mkdir()
        sink = make_sink()
        f, released, history = flusher(d, sink, on_failure, stages)
        await f.dead_letters.start()
        ems = sessions(n)
        if how == "grouped":
            await flush_group(f, history, ems)
        else:
            for em in ems:
                await f.flush(em)
        history.close()
        letters = [orjson.loads(line) for line in (d / "dead.jsonl").read_bytes().splitlines()]
        out[how] = (sink.written, released, runs_table(d / "runs.db"), f.windows_flushed,
                    [(x["reason"], x["stage"], x["value"]) for x in letters])
    return out


@SINKS
async def test_a_group_writes_records_and_releases_as_one_by_one(tmp_path, sink_class):
    got = await grouped_and_alone(tmp_path, sink_class, 40)
    written, released, runs, flushed, letters = got["grouped"]
    assert [k for k, _ in written] == [f"u{i}" for i in range(40)]  # in window order
    assert released == list(range(40))
    assert flushed == 40 and letters == []
    assert len(runs) == 80 and {r[4] for r in runs} == {"success"}  # agg + out per window
    # what the history shows per window is the same either way (timings aside)
    assert got["grouped"][:4] == got["alone"][:4]


@SINKS
async def test_a_failing_sink_in_a_group_dead_letters_only_its_window(tmp_path, sink_class):
    got = await grouped_and_alone(tmp_path, lambda: sink_class({"u3", "u7"}), 12)
    written, released, runs, flushed, letters = got["grouped"]
    assert [k for k, _ in written] == [f"u{i}" for i in range(12) if i not in (3, 7)]
    assert released == list(range(12))  # a dead-lettered window is done with, like a written one
    assert letters == [("sink_failed", "out", {"bidder": "u3", "n": 4, "window_start": "2026-01-01T00:00:03Z",
                                                "window_end": "2026-01-01T00:00:13Z"}),
                       ("sink_failed", "out", {"bidder": "u7", "n": 8, "window_start": "2026-01-01T00:00:07Z",
                                                "window_end": "2026-01-01T00:00:17Z"})]
    out_rows = {r[0]: r for r in runs if r[2] == "out"}
    assert out_rows["2026-01-01T00:00:03Z"][4] == "dead_lettered"
    assert out_rows["2026-01-01T00:00:03Z"][7] == "ConnectionError: no room for u3"
    assert sum(r[4] == "success" for r in out_rows.values()) == 10
    assert got["grouped"] == got["alone"]


@SINKS
async def test_a_window_stage_failing_in_a_group_dead_letters_only_its_window(tmp_path, sink_class):
    got = await grouped_and_alone(tmp_path, sink_class, 8, stages=[Doubling({"u2"})])
    written, released, runs, flushed, letters = got["grouped"]
    assert [(k, rows[0]["n"]) for k, rows in written] == [(f"u{i}", 2 * (i + 1)) for i in range(8) if i != 2]
    assert released == list(range(8)) and flushed == 8
    assert letters == [("stage_error", "double", {"bidder": "u2", "n": 3})]
    assert {r[4] for r in runs if r[2] == "double" and r[0] == "2026-01-01T00:00:02Z"} == {"dead_lettered"}
    assert not any(r[2] == "out" and r[0] == "2026-01-01T00:00:02Z" for r in runs)  # never reached the sink
    assert got["grouped"] == got["alone"]


@SINKS
async def test_a_halted_sink_in_a_group_releases_the_windows_written_before_it(tmp_path, sink_class):
    sink = sink_class({"u5"}, times=6)  # halts on u5 (retries = 1), recovers on its 7th attempt
    f, released, history = flusher(tmp_path, sink, on_failure="halt")
    f.policies["out"] = Policy(retries=1, retry_delay=0.15, max_retry_delay=0.15, timeout=None, on_failure="halt")
    await f.dead_letters.start()
    task = asyncio.create_task(flush_group(f, history, sessions(10)))
    seen_state = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and seen_state != "failed":
        await asyncio.sleep(0.05)
        # the history is read as the status page reads it, from another connection
        rows = {r[0]: r for r in runs_table(tmp_path / "runs.db") if r[2] == "out"}
        seen_state = rows.get("2026-01-01T00:00:05Z", (None,) * 5)[4]
    assert seen_state == "failed"  # the halt is visible while it lasts
    assert released == [0, 1, 2, 3, 4]  # the windows written before it are released meanwhile
    assert f.failing == {"out": "ConnectionError: no room for u5"}
    await asyncio.wait_for(task, 10)
    assert released == list(range(10)) and [k for k, _ in sink.written] == [f"u{i}" for i in range(10)]
    assert sink.attempts["u5"] == 7  # the group's call was its first attempt: 1 + 6 retries, as alone
    if isinstance(sink, GroupSink):
        assert sink.calls == [10]  # one call for the group; u5 on, window by window
    rows = {r[0]: r for r in runs_table(tmp_path / "runs.db") if r[2] == "out"}
    assert rows["2026-01-01T00:00:05Z"][4:6] == ("success", 1)
    assert not f.failing


@SINKS
async def test_a_group_shares_its_history_transactions(tmp_path, sink_class):
    for how in ("alone", "grouped"):
        d = tmp_path / how
        d.mkdir()
        sink = sink_class()
        f, _, history = flusher(d, sink)
        await f.dead_letters.start()
        commits = transactions(history)
        ems = sessions(30)
        if how == "grouped":
            await flush_group(f, history, ems)
            assert commits[0] == 1  # one transaction for the 30 windows
            assert getattr(sink, "calls", [30]) == [30]  # a sink that takes groups: one call
        else:
            for em in ems:
                await f.flush(em)
            assert commits[0] == 0  # autocommit: every statement its own (no COMMIT statement)
        assert history.flushed_total() == 30
        assert len(history.windows(limit=100)) == 30
        history.close()


def test_take_group_takes_what_waits_in_order_and_splits_at_the_maximum():
    async def go():
        q: asyncio.Queue[Any] = asyncio.Queue()
        ems = sessions(GROUP_MAX + 10)
        q.put_nowait(ems[1:GROUP_MAX])
        q.put_nowait(ems[GROUP_MAX])
        q.put_nowait(ems[GROUP_MAX + 1:])
        q.put_nowait(None)
        groups = take_group(q, ems[0])
        assert [[em.id for em in g] for g in groups] == [list(range(GROUP_MAX))]  # full: the rest waits
        rest = take_group(q, q.get_nowait())
        assert [len(g) for g in rest[:-1]] == [10] and rest[-1] is None
        assert [em.id for em in rest[0]] == list(range(GROUP_MAX, GROUP_MAX + 10))
        big = take_group(asyncio.Queue(), ems)  # one step closed more than a group holds
        assert [len(g) for g in big] == [GROUP_MAX, 10]
    asyncio.run(go())


async def test_a_window_stage_that_can_halt_keeps_the_writes_window_by_window(tmp_path):
    sink = GroupSink()
    f, released, history = flusher(tmp_path, sink, stages=[Doubling(set())])
    await f.dead_letters.start()
    f.policies["double"] = Policy(retries=0, retry_delay=0.01, max_retry_delay=0.01, timeout=None, on_failure="halt")
    await flush_group(f, history, sessions(5))
    assert sink.calls == [] and [k for k, _ in sink.written] == [f"u{i}" for i in range(5)]  # one write each
    assert released == list(range(5))
    f.policies["double"].on_failure = "dead_letter"
    await flush_group(f, history, sessions(5))
    assert sink.calls == [5]


async def test_groups_in_a_row_share_a_transaction_until_nothing_waits(tmp_path, monkeypatch):
    import rtstream.runtime.flush_group as fg

    monkeypatch.setattr(fg, "SETTLE_EVERY", 30.0)  # no timer in the way: close alone writes
    f, released, history = flusher(tmp_path, GroupSink())
    await f.dead_letters.start()
    commits = transactions(history)
    grouped = fg.GroupFlush(f, history)
    ems = sessions(20)
    await grouped.flush(ems[:9])
    await grouped.flush(ems[9:])
    assert commits[0] == 0 and released == [] and f.windows_flushed == 20  # written, not yet released
    grouped.close()
    assert commits[0] == 1 and released == list(range(20))
    assert history.flushed_total() == 20
    grouped.close()  # twice is harmless
    await grouped.flush(ems[:1])  # a new run of groups defers again
    grouped.close()
    assert commits[0] == 2 and released == [*range(20), 0]


async def test_the_timer_writes_and_releases_while_groups_keep_coming(tmp_path, monkeypatch):
    import rtstream.runtime.flush_group as fg

    monkeypatch.setattr(fg, "SETTLE_EVERY", 0.05)
    f, released, history = flusher(tmp_path, GroupSink())
    await f.dead_letters.start()
    grouped = fg.GroupFlush(f, history)
    await grouped.flush(sessions(3))
    deadline = time.monotonic() + 5
    while released != [0, 1, 2] and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert released == [0, 1, 2] and history.flushed_total() == 3  # without close
    grouped.close()
