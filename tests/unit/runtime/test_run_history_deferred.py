"""The run history deferred while a group is flushed (RunHistory.defer / write_deferred)."""

from __future__ import annotations

import sqlite3

from rtstream.runtime.run_history import RunHistory


def test_a_deferred_history_keeps_what_writing_each_statement_keeps(tmp_path):
    """Deferred (a group), a run's later states are folded into its first row, the windows-flushed count
    is written once and the trims once, where the last was asked: the same total, runs (but the time
    of their update) and log lines as every statement written as it came."""

    def tables(path):
        db = sqlite3.connect(path)
        try:
            return [sorted(db.execute("SELECT * FROM totals").fetchall()),
                    sorted(db.execute("SELECT window_start, window_end, component, kind, state, attempts, records, "
                                      "duration_ms, error FROM runs").fetchall()),
                    sorted(db.execute("SELECT window_start, message FROM logs").fetchall())]
        finally:
            db.close()

    got = []
    for deferred in (False, True):
        h = RunHistory(tmp_path / f"runs{deferred}.db", keep_windows=5)
        h.update("2026-01-01T00:00:29Z", "x", "out", "sink", "retrying", records=7, duration_ms=1.0, error="e")
        if deferred:
            h.defer()
        for i in [*range(30), 3, 28]:  # an old window again after its trim, and a kept one
            start = f"2026-01-01T00:00:{i:02d}Z"
            h.update(start, f"end {i}", "agg", "stage", "success", records=i + 1)
            h.update(start, f"end {i}", "out", "sink", "running", records=i)
            h.add_log(start, 0.0, "info", None, f"line {i}")
            h.update(start, "another end", "out", "sink", "success", duration_ms=float(i))
            if i % 3 == 0:
                h.update(start, start, "out", "sink", "dead_lettered", attempts=2, records=0, error="no room")
            h.note_flushed()
            if i % 10 == 9:
                h.trim()
        if deferred:
            h.write_deferred(stop=True)
        h.close()
        got.append(tables(tmp_path / f"runs{deferred}.db"))
    assert got[0] == got[1]
    # the newest 5 and the old window written again after the last trim
    assert got[0][0] == [("windows_flushed", 32)] and len({r[0] for r in got[0][1]}) == 6
