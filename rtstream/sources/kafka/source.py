"""Kafka via aiokafka: batches from `getmany`, commits by the commit rule, scale-out by group.

Several processes with one `group_id` share the partitions. On revoke, the runtime commits what is
safe for the revoked partitions and drops their unflushed windows; the next owner resumes from the
committed offset and rebuilds the same windows from the same record timestamps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Hashable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import OffsetAndMetadata

from rtstream.model.batch import Batch
from rtstream.model.errors import SourceError
from rtstream.model.positions import Assignment, Mark, SourceCommit
from rtstream.model.registry import register
from rtstream.sources.base import Source
from rtstream.sources.kafka.config import KafkaSourceConfig
from rtstream.sources.kafka.end import EndOfInput
from rtstream.sources.kafka.host_marks import HostMarks
from rtstream.sources.kafka.records import as_parsed, as_raw_records, install
from rtstream.sources.kafka.starts import StartPositions, offsets_to_commit
from rtstream.sources.kafka.static import static_share
from rtstream.sources.kafka.static_guard import StaticGuard
from rtstream.support.backoff import backoff_delay

log = logging.getLogger("rtstream.source.kafka")
install()


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: KafkaSource):
        self.source = source

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.source._revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.source._assigned(list(assigned))


@register("source", "kafka")
class KafkaSource(Source):
    """`start`: "committed" resumes from the group's commits (the beginning where there are none);
    "earliest" and "latest" ignore the commits on this process's first assignment of a partition."""

    Config = KafkaSourceConfig
    splits_by_group = True

    def __init__(self, name: str, config: Any, context: Any):
        super().__init__(name, config, context)
        self.epoch = 0
        self._lag: dict[TopicPartition, int] = {}
        self._seen: set[TopicPartition] = set()
        self.consumer: AIOKafkaConsumer | None = None
        self.joined = False
        self._paused = False
        self._ready = asyncio.Event()
        self._ready.set()
        self._start_pos: dict[TopicPartition, int] = {}
        self._end: EndOfInput | None = None  # for stop_at_end, once the consumer exists
        self._guard: StaticGuard | None = None  # static: the watch for other readers of the partitions

    @property
    def finite(self) -> bool:
        return self.config.stop_at_end  # type: ignore[no-any-return]

    def partitions(self) -> list[Hashable] | None:
        return None  # the group decides, through the rebalance listener

    async def start(self) -> None:
        c = self.config
        self._marks = await HostMarks.load(self.context.state_dir, self.name, c.group_id)
        # before the consumer exists: a refusal, or a stop while waiting for a topic, leaves nothing open
        share = None
        if c.assignment == "static":
            partitions, share = await static_share(c, self.name, self.context.worker)
            self._guard = StaticGuard(c, self.name, self.context.worker, partitions)
            await self._guard.start()
        settings: dict[str, Any] = {
            **c.client_kwargs(f"rtstream-{self.context.pipeline}"),
            "group_id": c.group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "latest" if c.start == "latest" else "earliest",
            "value_deserializer": as_parsed,  # messages as parsed, no ConsumerRecord each (kafka_records)
            **c.consumer,
        }
        self.consumer = AIOKafkaConsumer(**settings)
        await self.consumer.start()
        self._starts = StartPositions(self.consumer, c, self.name, self._marks.file)
        if c.stop_at_end:
            self._end = EndOfInput(self.name, self.consumer, nothing_assigned_is_done=share is not None,
                                   joined=lambda: self.joined)
        listener = _Rebalance(self)
        if share is not None:  # no group: no rebalance, so no revoke; the one setup path all the same
            self.consumer.assign(share)
            await self._assigned(share)
        elif c.topics:
            self.consumer.subscribe(topics=c.topics, listener=listener)
        else:
            self.consumer.subscribe(pattern=c.pattern, listener=listener)

    async def _assigned(self, assigned: list[TopicPartition]) -> None:
        # Nothing fetched is accepted until the setup has decided and set every start position.
        self._ready.clear()
        self.epoch += 1
        if self._end is not None:
            self._end.changing()
        try:
            attempt = 0
            while True:
                try:
                    await self._setup_assignment(assigned)
                    return
                except Exception as exc:  # noqa: BLE001 - a broker restarting: the setup is tried again
                    # Given up, the partitions would stay assigned here with no decided start, and
                    # every batch of them would be dropped as not owned, for good.
                    attempt += 1
                    delay = backoff_delay(attempt, 0.2, 5.0)
                    log.warning("%s: setting up the assigned partitions failed (%s: %s); again in %.1fs", self.name,
                                type(exc).__name__, str(exc)[:300], delay, extra={"component": self.name})
                    await asyncio.sleep(delay)
        finally:
            self._ready.set()

    async def _setup_assignment(self, assigned: list[TopicPartition]) -> None:
        """Decide where each assigned partition starts, then seek there explicitly.

        The start comes from what the group committed, `start`/`start_at`, or a checkpoint, never
        from `consumer.position()`: a fetch running beside this setup may already have moved the
        position past records nobody has accepted yet (they are discarded and read again from here).
        """
        assert self.consumer is not None
        self.joined = True
        if not assigned:  # none here (another member has them all): the first assignment all the same,
            await self.context.partitions.assigned(Assignment(self.name, self.epoch, {}))  # one waited for
            return
        decided = await self._starts.decide(assigned, fresh=[tp for tp in assigned if tp not in self._seen])
        if self._end is not None:
            await self._end.assigned(assigned)
        # a checkpoint may cover the partitions that resume from the commit: read on from its position
        starts = await self.context.partitions.assigned(Assignment(
            self.name, self.epoch, dict(decided.starts), dict(decided.marks), set(decided.resumable)))
        for tp in assigned:
            self._start_pos[tp] = starts[tp]
            self.consumer.seek(tp, starts[tp])
        self._seen.update(assigned)  # only once decided: a retried setup still applies `start` to them

    async def _position(self, tp: TopicPartition) -> int | None:
        """The consumer's fetch position once this setup has decided the partition's start: past the
        last record handed out, and past transaction markers and compacted-away offsets after it.
        Answered without suspending while the position is valid (after the setup's seek it is)."""
        if tp not in self._start_pos or self.consumer is None or not self._ready.is_set():
            return None
        try:
            return await self.consumer.position(tp)
        except IllegalStateError:  # revoked meanwhile: the end decision starts over
            return None

    def checkpoint_scope(self) -> str:
        return f"{self.name}@{self.config.group_id}"  # a new group starts over, whatever an old one saved

    async def _revoked(self, revoked: list[TopicPartition]) -> None:
        self._ready.clear()  # set again when the next assignment has decided its starts
        self.epoch += 1
        if self._end is not None:
            self._end.changing()
        for tp in revoked:
            self._start_pos.pop(tp, None)
            self._lag.pop(tp, None)
        await self.context.partitions.revoked(self.name, list(revoked))

    async def batches(self) -> AsyncIterator[Batch]:
        assert self.consumer is not None
        c = self.config
        timeout_ms = int(c.fetch_timeout * 1000)
        raw = c.format == "raw"
        last_lag_log = time.monotonic()
        while True:
            if self._paused:
                self.consumer.resume(*self.consumer.assignment())
                self._paused = False
            await self._ready.wait()
            await self._check_alone()
            epoch = self.epoch
            data = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=c.max_batch)
            await self._ready.wait()
            owned = self.consumer.assignment()
            if self.epoch != epoch:
                # A rebalance began while fetching: this fetch may come from before the setup's seek,
                # or have moved the position past what nobody accepted. Read again from the start the
                # setup decided.
                for tp, msgs in data.items():
                    if msgs and tp in owned and tp in self._start_pos:
                        self.consumer.seek(tp, self._start_pos[tp])
                continue
            # with the fetch, before anything awaits: the end is decided on what was handed out
            positions = {tp: await self._position(tp) for tp in owned} if self._end is not None else {}
            for tp, msgs in data.items():
                if tp not in owned or not msgs:
                    continue
                # parsed records have what a SourceRecord needs: no object is built per message
                records = as_raw_records(msgs) if raw else msgs
                end = msgs[-1].offset + 1
                hw = self.consumer.highwater(tp)
                if hw is not None:
                    self._lag[tp] = max(0, hw - end)
                # the epoch it was fetched in: a rebalance while an earlier batch was handed on makes it stale
                yield Batch(self.name, tp, records, end, decoded=raw, epoch=epoch, key_field=c.key_field)
            current = self.epoch == epoch and self._ready.is_set()  # no rebalance while the batches were handed on
            if self._end is not None and current and await self._end.reached(data, positions):
                log.info("%s: %s", self.name, self._end.finished(), extra={"component": self.name})
                return
            if time.monotonic() - last_lag_log >= c.lag_log_interval:
                last_lag_log = time.monotonic()
                if self._lag:
                    log.info("%s: consumer lag %s", self.name,
                             {f"{tp.topic}:{tp.partition}": n for tp, n in sorted(self._lag.items())},
                             extra={"component": self.name})

    def _offsets(self, commit: SourceCommit) -> dict[TopicPartition, OffsetAndMetadata]:
        return offsets_to_commit(commit, self.consumer.assignment() if self.consumer is not None else set())

    async def commit(self, positions: dict[Hashable, int], marks: dict[Hashable, Mark] | None = None) -> None:
        if self.consumer is None or not self.config.commit_offsets or self._displaced():
            return
        offsets = self._offsets(SourceCommit(positions, marks or {}))
        if offsets:
            await self._marks.before_commit(offsets, marks or {})  # a kill may follow the broker's answer
            try:
                await self.consumer.commit(offsets)  # type: ignore[arg-type]
            except CommitFailedError as exc:
                if self._guard is None:
                    raise
                self._guard.refused(exc)  # said once, by the source as it stops, not at every commit
                return
            self._marks.committed(offsets)

    def _displaced(self) -> bool:
        """Another reader took this static reader's partitions: it commits nothing more (its final
        commit would move the group's offsets under the reader that goes on)."""
        return self._guard is not None and self._guard.stopped is not None

    async def _check_alone(self) -> None:
        if self._guard is not None and await self._guard.due() is not None:
            raise SourceError(self.name, str(self._guard.stopped))

    async def transaction_offsets(self, commit: SourceCommit) -> tuple[str, dict[Any, Any]] | None:
        if not self.config.commit_offsets or self._displaced():
            return None
        offsets = self._offsets(commit)
        await self._marks.before_commit(offsets, commit.marks)  # as in commit: before the broker can hold them
        return self.config.group_id, offsets

    async def committed_in_transaction(self, commit: SourceCommit) -> None:
        self._marks.committed(self._offsets(commit))

    async def keepalive(self) -> None:
        """Pause fetching and poll with nothing to take, so the group does not drop this member for
        having stopped polling (max_poll_interval_ms) while a slow sink holds the pipeline."""
        if self.consumer is None:
            return
        owned = self.consumer.assignment()
        if owned:
            self.consumer.pause(*owned)
            self._paused = True
        await self.consumer.getmany(timeout_ms=0)
        await self._check_alone()

    def lag(self) -> dict[tuple[str, int], int]:
        return {(tp.topic, tp.partition): n for tp, n in self._lag.items()}

    def not_ready(self) -> str | None:
        if self.consumer is None:
            return "consumer not started"
        if not self.joined:
            return f"not yet joined to group {self.config.group_id!r}"
        return None

    async def close(self) -> None:
        if self._guard is not None:
            await self._guard.close()
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None

    def describe(self) -> str:
        c = self.config
        what = ",".join(c.topics) if c.topics else f"/{c.pattern}/"
        static = ", static assignment: the partitions at start, new ones after a restart" if c.assignment == "static" else ""
        return f"kafka: {what} @ {c.servers_label()} group {c.group_id} ({c.format}, start {c.start}{static}" + (
            ", stop at end)" if c.stop_at_end else ")")

