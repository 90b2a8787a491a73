"""This host's copy of the marks (rtstream/sources/kafka/host_marks.py): on disk before the broker
can hold the offsets, so whichever offset the group holds after a kill, its mark is found; the
one-entry file of earlier versions still reads."""

from __future__ import annotations

import asyncio

import orjson
from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from rtstream.model.positions import Mark
from rtstream.sources.kafka.host_marks import KEEP, HostMarks, saved_mark

TP = TopicPartition("t", 0)


def on_disk(marks: HostMarks) -> dict:
    return orjson.loads(marks.file.path.read_bytes())


def test_the_mark_is_on_disk_before_the_commit_and_the_previous_one_stays_until_it_lands(tmp_path):
    async def run():
        marks = await HostMarks.load(tmp_path, "src", "g")
        await marks.before_commit({TP: OffsetAndMetadata(10, "")}, {TP: Mark(1000, 15)})
        marks.committed({TP: OffsetAndMetadata(10, "")})
        await marks.before_commit({TP: OffsetAndMetadata(20, "")}, {TP: Mark(2000, 25)})
        # killed here, whether or not the broker got offset 20: either offset finds its own mark
        doc = on_disk(marks)
        assert saved_mark(doc, "t:0", 10) == Mark(1000, 15)
        assert saved_mark(doc, "t:0", 20) == Mark(2000, 25)
        assert saved_mark(doc, "t:0", 15) is None  # an offset saved with no mark has none
        marks.committed({TP: OffsetAndMetadata(20, "")})
        await marks.before_commit({TP: OffsetAndMetadata(20, "")}, {TP: Mark(2500, 30)})
        doc = on_disk(marks)
        assert doc["t:0"] == [[20, 2500, 30]]  # the landed 10 is gone; one entry per offset, the newest mark
        # a new process reads what the last one saved
        again = await HostMarks.load(tmp_path, "src", "g")
        await again.before_commit({TP: OffsetAndMetadata(30, "")}, {TP: Mark(3000, 35)})
        assert on_disk(again)["t:0"] == [[20, 2500, 30], [30, 3000, 35]]

    asyncio.run(run())


def test_commits_that_never_land_keep_a_bounded_history(tmp_path):
    async def run():
        marks = await HostMarks.load(tmp_path, "src", "g")
        for off in range(1, 30):
            await marks.before_commit({TP: OffsetAndMetadata(off, "")}, {TP: Mark(off * 10, off + 1)})
        entries = on_disk(marks)["t:0"]
        assert len(entries) == KEEP and entries[-1] == [29, 290, 30]

    asyncio.run(run())


def test_the_one_entry_file_of_earlier_versions_reads(tmp_path):
    doc = {"t:0": [7, 700, 9]}
    assert saved_mark(doc, "t:0", 7) == Mark(700, 9)
    assert saved_mark(doc, "t:0", 8) is None and saved_mark(doc, "t:1", 7) is None
