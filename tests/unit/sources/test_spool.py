"""The spool alone: segments, markers, commits, all-or-nothing appends."""

import asyncio

import orjson

from rtstream.sources.spool.spool_file import Spool


def test_the_newest_marker_outlives_the_segment_that_held_it(tmp_path):
    async def scenario() -> bytes | None:
        spool = Spool(tmp_path / "spool", segment_bytes=1024, fsync="interval")
        spool.open()
        cursor = 0
        while True:  # appends with their cursor, until one of them ends a segment (more than three)
            segments = len(spool._segments())
            await spool.append([orjson.dumps({"id": cursor, "pad": "x" * 100})], marker=b'{"cursor": %d}' % cursor)
            if len(spool._segments()) > segments > 3:
                break
            cursor += 1
        spool.commit(spool.end)  # every segment but the active one is deleted
        assert len(spool._segments()) == 1
        spool.close()
        again = Spool(tmp_path / "spool", segment_bytes=1024)
        again.open()
        found = again.last_marker()
        records = [b async for b in again.read("s", follow=False)]
        again.close()
        assert records == []  # the marker line is not a record
        return found, cursor

    found, cursor = asyncio.run(scenario())
    assert found == b'{"cursor": %d}' % cursor


def test_a_torn_last_line_is_dropped_on_open(tmp_path):
    async def scenario() -> list[bytes]:
        spool = Spool(tmp_path / "spool")
        spool.open()
        await spool.append([b'{"a": 1}', b'{"a": 2}'])
        spool.close()
        seg = next((tmp_path / "spool").glob("*.log"))
        with open(seg, "ab") as fh:
            fh.write(b'123 {"a": 3')  # a crash mid-append
        again = Spool(tmp_path / "spool")
        again.open()
        values = [r.value for b in [b async for b in again.read("s", follow=False)] for r in b.records]
        await again.append([b'{"a": 4}'])
        values += [r.value for b in [b async for b in again.read("s", follow=False)] for r in b.records][2:]
        again.close()
        return values

    assert asyncio.run(scenario()) == [b'{"a": 1}', b'{"a": 2}', b'{"a": 4}']
