"""What a flushed group logs (rtstream.runtime.flush_group): a large group of session windows one INFO
line for all of them (each window's own line at DEBUG, so not in its run history); a small group, and
time windows however many, each window's line at INFO as when flushed alone."""

from __future__ import annotations

import logging

import pytest

from rtstream.engine.emission import Emission
from rtstream.model.window import Window
from rtstream.runtime.flush_group import LOG_EACH_UPTO, flush_group
from rtstream.runtime.window_log import WindowLogRecorder
from tests.unit.runtime.test_flush_group import GroupSink, ListSink, flusher, sessions

SINKS = pytest.mark.parametrize("sink_class", [ListSink, GroupSink])


def _flush_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "rtstream.flush" and r.levelno == level]


@SINKS
async def test_a_large_group_logs_one_line_and_each_window_at_debug(tmp_path, caplog, sink_class):
    caplog.set_level(logging.DEBUG)
    f, released, history = flusher(tmp_path, sink_class())
    await f.dead_letters.start()
    recorder = WindowLogRecorder(history)
    logging.getLogger().addHandler(recorder)
    try:
        await flush_group(f, history, sessions(40))
    finally:
        logging.getLogger().removeHandler(recorder)
    [line] = _flush_lines(caplog, logging.INFO)
    assert line.startswith("40 windows flushed, the first 2026-01-01T00:00:00Z .. 2026-01-01T00:00:10Z, the last "
                           "2026-01-01T00:00:39Z .. 2026-01-01T00:00:49Z: 820 records in, 40 rows out, ")
    each = _flush_lines(caplog, logging.DEBUG)
    assert len(each) == 40 and each[3].startswith("window 2026-01-01T00:00:03Z .. 2026-01-01T00:00:13Z flushed: "
                                                  "4 records in, 1 rows out")
    assert released == list(range(40))
    assert history.logs("2026-01-01T00:00:03Z") == []  # an INFO line is what a window's story keeps
    assert f.log_each  # the next group decides again
    history.close()


@SINKS
async def test_a_small_group_logs_each_window_at_info(tmp_path, caplog, sink_class):
    caplog.set_level(logging.DEBUG)
    f, _, history = flusher(tmp_path, sink_class())
    await f.dead_letters.start()
    await flush_group(f, history, sessions(LOG_EACH_UPTO))
    lines = _flush_lines(caplog, logging.INFO)
    assert len(lines) == LOG_EACH_UPTO and all(" flushed: " in line for line in lines)
    assert _flush_lines(caplog, logging.DEBUG) == []
    history.close()


async def test_a_failing_window_of_a_large_group_still_logs_its_error(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    f, _, history = flusher(tmp_path, GroupSink({"u12"}))
    await f.dead_letters.start()
    await flush_group(f, history, sessions(30))
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("gave up on window 2026-01-01T00:00:12Z" in e for e in errors), errors
    assert len(_flush_lines(caplog, logging.INFO)) == 1
    history.close()



@SINKS
async def test_time_windows_log_each_line_however_many_close_at_once(tmp_path, caplog, sink_class):
    """A backlog of tumbling windows (no key) read from a file closes many at once: each is its own line."""
    caplog.set_level(logging.DEBUG)
    f, released, history = flusher(tmp_path, sink_class())
    await f.dead_letters.start()
    ems = [Emission(i, Window(em.window.start_ms, em.window.end_ms, em.rows, None, 2), em.rows, em.partitions)
           for i, em in enumerate(sessions(12))]
    await flush_group(f, history, ems)
    lines = _flush_lines(caplog, logging.INFO)
    assert len(lines) == 12 and lines[0].startswith("window 2026-01-01T00:00:00Z .. 2026-01-01T00:00:10Z flushed: ")
    assert released == list(range(12))
    history.close()
