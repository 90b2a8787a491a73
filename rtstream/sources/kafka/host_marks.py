"""This host's copy of the marks committed with Kafka offsets, for brokers that drop commit metadata.

A mark is read back only for the very offset the group has committed (rtstream.sources.kafka.starts).
The copy is saved *before* the offsets go to the broker, never after: a process killed between the
broker's acknowledgement and the save restarted from the new offset with no mark, and rebuilt a
written window from the out-of-order records after that offset (found on 2026-12-06 by
test_sigkill_mid_run_then_a_restart_loses_nothing: the test kills the daemon as soon as it sees a
new commit, and one kill of four landed during the save; u33's 00:35 window was written again with
the one record after the commit, 1 event instead of 48). So each partition keeps the entries of the
commits not yet known to have landed, beside the last one that did: whichever of them the broker
holds at a restart, its mark is here.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Hashable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from rtstream.model.positions import Mark
from rtstream.sources.file_positions import PositionFile

KEEP = 8  # entries per partition: the last acknowledged commit and the attempts after it (a broker down)


def _entries(saved: Any) -> list[list[int]]:
    """A partition's entries [offset, written_upto, next_offset], oldest first."""
    if not saved:
        return []
    if isinstance(saved[0], int):  # the one-entry form written before 2026-12-06
        return [list(saved)]
    return [list(e) for e in saved]


def saved_mark(doc: dict[str, Any], key: str, offset: int) -> Mark | None:
    """The mark saved with `offset` for the partition `key` ("topic:partition"), if any."""
    for o, written, nxt in reversed(_entries(doc.get(key))):
        if o == offset:
            return Mark(written, nxt)
    return None


def _key(tp: TopicPartition) -> str:
    return f"{tp.topic}:{tp.partition}"


class HostMarks:
    """Per host: replicas sharing a state volume must not overwrite each other's copy."""

    def __init__(self, state_dir: Any, source: str, group_id: str):
        self.file = PositionFile(state_dir, f"{source}.{group_id}.{socket.gethostname()}.marks")
        self._saved: dict[str, Any] = {}
        self._lock = asyncio.Lock()  # two saves at once could rename the older document last

    @classmethod
    async def load(cls, state_dir: Any, source: str, group_id: str) -> HostMarks:
        marks = cls(state_dir, source, group_id)
        marks._saved = await asyncio.to_thread(marks.file.load)
        return marks

    async def before_commit(self, offsets: dict[TopicPartition, OffsetAndMetadata],
                            marks: dict[Hashable, Mark]) -> None:
        """On disk before the broker can hold `offsets` (a StateDirError stops the commit)."""
        fresh = {tp: meta.offset for tp, meta in offsets.items() if tp in marks}
        if not fresh:
            return
        async with self._lock:
            for tp, offset in fresh.items():
                # one entry per offset, the newest mark: a later mark with the same offset is as safe
                kept = [e for e in _entries(self._saved.get(_key(tp))) if e[0] != offset]
                self._saved[_key(tp)] = [*kept, [offset, *marks[tp]]][-KEEP:]
            await asyncio.to_thread(self.file.save, dict(self._saved))

    def committed(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """The broker acknowledged `offsets`: the entries saved before each are no longer needed
        (dropped here, and from the file at the next save)."""
        for tp, meta in offsets.items():
            entries = _entries(self._saved.get(_key(tp)))
            at = next((i for i in range(len(entries) - 1, -1, -1) if entries[i][0] == meta.offset), None)
            if at:
                self._saved[_key(tp)] = entries[at:]
