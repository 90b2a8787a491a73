"""A sink several branches feed (rtstream.runtime.shared_sinks): each branch's rows tagged with its
name on copies, one window written at a time whichever branch it comes from, into the real file sink
that merges a window's file by (branch, key)."""

import asyncio
from types import SimpleNamespace

import orjson

from rtstream.model.window import Window
from rtstream.runtime.context import Context
from rtstream.runtime.shared_sinks import SharedSink
from rtstream.sinks.file import FileSink, FileSinkConfig

MIN = 60_000
BASE = 1_767_225_600_000


def file_sink(tmp_path):
    ctx = Context(pipeline="t", state_dir=tmp_path, key_fields=["branch", "user_id"])
    return FileSink("out", FileSinkConfig(type="file", path=str(tmp_path / "out")), ctx)


def test_two_branches_windows_of_one_start_live_side_by_side(tmp_path):
    inner = file_sink(tmp_path)
    asyncio.run(inner.start())
    lock = asyncio.Lock()
    per_min, per_hour = SharedSink(inner, "per_min", lock), SharedSink(inner, "per_hour", lock)
    mine = [{"user_id": "u1", "n": 1, "branch": "someone else's"}]
    asyncio.run(per_min.write(Window(BASE, BASE + MIN), mine))
    asyncio.run(per_hour.write(Window(BASE, BASE + 60 * MIN), [{"user_id": "u1", "n": 7}]))
    asyncio.run(per_min.write(Window(BASE, BASE + MIN), [{"user_id": "u1", "n": 2}]))  # a replay: replaces its own
    [f] = (tmp_path / "out").iterdir()
    rows = sorted((orjson.loads(x) for x in f.read_bytes().splitlines()), key=lambda r: r["branch"])
    assert rows == [{"user_id": "u1", "n": 7, "branch": "per_hour"}, {"user_id": "u1", "n": 2, "branch": "per_min"}]
    assert mine == [{"user_id": "u1", "n": 1, "branch": "someone else's"}]  # the branch's own rows are not changed
    assert per_min.name == "out" and per_min.where is None and per_min.describe() == "file"


def test_writes_are_serialised_across_branches():
    seen: list[str] = []

    class Slow:
        name, config, context, type_name = "out", SimpleNamespace(where=None), None, "slow"

        async def write(self, window, rows):
            seen.append(f"in {rows[0]['branch']}")
            await asyncio.sleep(0.01)
            seen.append(f"out {rows[0]['branch']}")

        def describe(self):
            return "slow"

    async def both():
        lock = asyncio.Lock()
        doors = [SharedSink(Slow(), name, lock) for name in ("a", "b", "c")]  # type: ignore[arg-type]
        await asyncio.gather(*(d.write(Window(BASE, BASE + MIN), [{"x": 1}]) for d in doors for _ in range(3)))

    asyncio.run(both())
    assert len(seen) == 18
    assert all(seen[i].startswith("in") and seen[i + 1] == "out" + seen[i][2:] for i in range(0, 18, 2))
