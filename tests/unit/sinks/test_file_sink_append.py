"""The file sink's `mode = "append"`: every window's rows appended, in window order, to the file of its
start's UTC day; a replayed window appends again; refused rows are left out of the file alone."""

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from rtstream.model.errors import RowsRejected
from rtstream.model.window import Window
from rtstream.runtime.context import Context
from rtstream.sinks.file import FileSink, FileSinkConfig

DAY1 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY_MS = 86_400_000


def _sink(folder: Path) -> FileSink:
    sink = FileSink("out", FileSinkConfig(type="file", path=str(folder), fsync=True, mode="append"),
                    Context("p", folder.parent / "state", key_fields=["k"]))
    asyncio.run(sink.start())
    return sink


def _session(start: int, key: str, n: int) -> tuple[Window, list[dict[str, Any]]]:
    rows = [{"k": key, "n": n, "window_start": Window(start, 0).start_iso}]
    return Window(start, start + 10_000, rows, key, 1), rows


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_windows_are_appended_to_their_day_s_file_in_order_and_a_replay_appends_again(tmp_path: Path) -> None:
    sink = _sink(tmp_path / "out")
    items = [_session(DAY1 + i * 1000, f"u{i % 3}", i) for i in range(5)] + [_session(DAY1 + DAY_MS + 5, "u9", 99)]
    for window, rows in items[:3]:
        asyncio.run(sink.write(window, rows))
    assert asyncio.run(sink.write_windows(items[3:])) == (3, None)
    assert sorted(p.name for p in sink.dir.iterdir()) == ["2026-01-01.jsonl", "2026-01-02.jsonl"]
    assert [r["n"] for r in _lines(sink.dir / "2026-01-01.jsonl")] == [0, 1, 2, 3, 4]
    assert _lines(sink.dir / "2026-01-02.jsonl") == [items[5][1][0]]
    asyncio.run(sink.write(*items[1]))  # a replayed window: at least once
    assert [r["n"] for r in _lines(sink.dir / "2026-01-01.jsonl")] == [0, 1, 2, 3, 4, 1]


def test_a_refused_row_is_left_out_and_a_window_of_no_rows_makes_no_file(tmp_path: Path) -> None:
    sink = _sink(tmp_path / "out")
    window, _ = _session(DAY1, "u1", 1)
    rows = [{"k": "u1", "n": 1}, {"k": "u1", "n": 1 << 70}, {"k": "u1", "n": 3}]
    with pytest.raises(RowsRejected) as refused:
        asyncio.run(sink.write(window, rows))
    assert [batch for batch, _ in refused.value.rejected] == [[rows[1]]]
    assert [r["n"] for r in _lines(sink.dir / "2026-01-01.jsonl")] == [1, 3]
    asyncio.run(sink.write(Window(DAY1 + 2 * DAY_MS, DAY1 + 2 * DAY_MS + 10_000), []))
    assert not (sink.dir / "2026-01-03.jsonl").exists()


def test_a_line_a_crash_tore_is_cut_before_the_next_append(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "2026-01-01.jsonl").write_bytes(b'{"k": "u0", "n": 0}\n{"k": "u1", "n"')  # killed mid-write
    sink = _sink(folder)
    asyncio.run(sink.write(*_session(DAY1 + 5000, "u2", 2)))
    assert [r["n"] for r in _lines(folder / "2026-01-01.jsonl")] == [0, 2]


def test_a_full_disk_takes_back_its_part_of_a_window_and_the_retry_appends_whole_lines(tmp_path: Path) -> None:
    from tests.support import small_tmpfs

    with small_tmpfs(tmp_path / "disk", "64k") as mount:
        sink = _sink(mount / "out")
        day = mount / "out" / "2026-01-01.jsonl"
        asyncio.run(sink.write(*_session(DAY1, "u0", 0)))
        before = day.read_bytes()
        window, _ = _session(DAY1 + 1000, "big", 1)
        rows = [{"k": "big", "n": i, "pad": "x" * 1000} for i in range(200)]  # 200 kB: more than the disk
        with pytest.raises(OSError):
            asyncio.run(sink.write(window, rows))
        assert day.read_bytes() == before  # nothing of the failed window, not half a line
        asyncio.run(sink.write(window, rows[:20]))  # what fits, as a retry with space writes it
        assert [r["n"] for r in _lines(day)] == [0, *range(20)]
