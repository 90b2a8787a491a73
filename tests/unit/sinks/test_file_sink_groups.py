"""The file sink given a group's windows in one call (FileSink.write_windows, rtstream.runtime.flush_group):
the same files, byte for byte, as window by window; it stops at the first window that fails or refuses
rows, and the flusher takes that window on under the sink's policy."""

import asyncio
from pathlib import Path
from typing import Any

import orjson

from rtstream.engine.emission import Emission
from rtstream.model.errors import RowsRejected
from rtstream.model.policy import Policy
from rtstream.model.window import Window
from rtstream.runtime.context import Context
from rtstream.runtime.dead_letter_file import DeadLetterFile
from rtstream.runtime.flush import WindowFlusher
from rtstream.runtime.flush_group import flush_group
from rtstream.runtime.run_history import RunHistory
from rtstream.sinks.file import FileSink, FileSinkConfig

BASE = 1_767_225_600_000


def _sink(folder: Path, keys: list[str] | None = None) -> FileSink:
    sink = FileSink("out", FileSinkConfig(type="file", path=str(folder), fsync=False),
                    Context("p", folder.parent / "state", key_fields=keys or []))
    asyncio.run(sink.start())
    return sink


def _windows(n: int) -> list[tuple[Window, list[dict[str, Any]]]]:
    """Session windows, some sharing a start, keys plain and not (a `/`), one of two rows."""
    out = []
    for i in range(n):
        key = f"u{i % 7}" if i % 5 else f"a/{i}"
        start = BASE + (i // 2) * 1000
        rows = [{"k": key, "n": i, "window_start": Window(start, 0).start_iso}]
        if i % 4 == 0:
            rows.append({"k": key, "n": -i, "x": 1.5})
        out.append((Window(start, start + 10_000, rows, key, i + 1), rows))
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_group_writes_the_same_files_as_window_by_window(tmp_path: Path) -> None:
    for keys in ([], ["k", "n"]):
        alone, grouped = _sink(tmp_path / f"alone{len(keys)}", keys), _sink(tmp_path / f"grouped{len(keys)}", keys)
        items = _windows(30)
        for _ in range(2):  # the second time over existing files: replaced, or merged by the upsert key
            for window, rows in items:
                asyncio.run(alone.write(window, rows))
            assert asyncio.run(grouped.write_windows(items)) == (30, None)
        assert len(_files(alone.dir)) == 30
        assert _files(grouped.dir) == _files(alone.dir)


def test_a_window_with_refused_rows_stops_the_group_after_writing_the_rest_of_it(tmp_path: Path) -> None:
    sink = _sink(tmp_path / "out")
    items = _windows(6)
    items[3][1].append({"k": "bad", "n": 2 ** 70})
    written, failed = asyncio.run(sink.write_windows(items))
    assert written == 3 and isinstance(failed, RowsRejected)
    assert [r for batch, _ in failed.rejected for r in batch] == [{"k": "bad", "n": 2 ** 70}]
    assert sink.file_for(items[3][0]).read_bytes() == b"".join(orjson.dumps(r) + b"\n" for r in items[3][1][:-1])
    assert [sink.file_for(w).exists() for w, _ in items] == [True, True, True, True, False, False]


def test_a_failing_write_stops_the_group_at_its_window(tmp_path: Path) -> None:
    sink = _sink(tmp_path / "out")
    items = _windows(6)
    sink.file_for(items[2][0]).mkdir()  # the window's file cannot replace a folder
    written, failed = asyncio.run(sink.write_windows(items))
    assert written == 2 and isinstance(failed, OSError)
    assert [sink.file_for(w).is_file() for w, _ in items] == [True, True, False, False, False, False]
    assert not [p for p in sink.dir.iterdir() if p.name.endswith(".tmp")]  # no temporary file left


async def test_the_flusher_retries_a_failed_window_alone_and_writes_the_others(tmp_path: Path) -> None:
    sink = FileSink("out", FileSinkConfig(type="file", path=str(tmp_path / "out"), fsync=False),
                    Context("p", tmp_path / "state"))
    await sink.start()
    released: list[int] = []
    history = RunHistory(tmp_path / "runs.db")
    dead = DeadLetterFile(tmp_path / "dead.jsonl")
    await dead.start()
    policies = {"out": Policy(retries=2, retry_delay=0.01, max_retry_delay=0.02, timeout=None,
                              on_failure="dead_letter")}
    f = WindowFlusher([], [sink], dead, lambda em: released.append(em.id), policies, history=history)
    ems = [Emission(i, w, rows, [(("s", 0), i)]) for i, (w, rows) in enumerate(_windows(12))]
    blocked = sink.file_for(ems[4].window)
    blocked.mkdir(parents=True)
    await flush_group(f, history, ems)
    assert released == list(range(12))
    assert sorted(p.name for p in sink.dir.iterdir() if p.is_file()) == sorted(
        sink.file_for(em.window).name for em in ems if em is not ems[4])
    letters = [orjson.loads(line) for line in (tmp_path / "dead.jsonl").read_bytes().splitlines()]
    assert {x["reason"] for x in letters} == {"sink_failed"} and [x["value"]["n"] for x in letters] == [4, -4]
    assert f.retries_by == {"out": 2} and f.failures == {"out": 1}  # the group's call was its first attempt
    history.close()
