"""Kafka via aiokafka: each window's rows as JSON messages, keyed so a replay repeats the keys.

The message key is `window_start|key` (or the row's `key_field`), so a compacted topic keeps one
value per (window, key) however often a window is replayed; a count window adds its `window_id`
after the start, and a row without a key its place in the window (`window_start|#3`; with
`workers = N`, worker I's rows `window_start|#I.3`). `write` returns only when the broker
has acknowledged every message (per `acks`).

With `exactly_once`, each window is one transaction that also commits the source offsets its
writing makes safe (`send_offsets_to_transaction`): the results and the offsets become visible
together or not at all, so a `read_committed` consumer sees each window's rows once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    UnknownError,
)
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from pydantic import Field, model_validator

from rtstream.connect.kafka_settings import KafkaConnection
from rtstream.model.durations import Duration
from rtstream.model.errors import RowsRejected
from rtstream.model.positions import WindowCommit
from rtstream.model.registry import register
from rtstream.model.window import Window
from rtstream.sinks.base import Sink, SinkConfig
from rtstream.sinks.kafka.partitioner import KeyPartitioner
from rtstream.sinks.rows import Rejected, encode_row

log = logging.getLogger("rtstream.sink.kafka")


class KafkaSinkConfig(SinkConfig, KafkaConnection):
    topic: str = Field(description="rows are written to this topic")
    key_field: str | None = Field(default=None, description="the row field used as message key")
    format: Literal["json"] = Field(default="json", description="rows are written as JSON")
    acks: Literal["all", 0, 1, -1] = Field(default="all", description="acknowledgements a write waits for")
    compression: Literal["gzip", "lz4", "zstd", "snappy"] | None = Field(default=None,
        description="compression of record batches")
    linger: Duration = Field(default=0.005, description="how long a batch waits for more rows")
    # also the size of the sink's record batches (unless `producer = { max_batch_size = N }`): a
    # window's rows go out as one batch per partition where they fit, not in aiokafka's 16 KiB
    # batches, each of which costs a round trip to the broker before the next may follow
    max_request_size: int = Field(default=1_048_576, ge=1024, description="bytes of one request (and batch) at most")
    producer: dict[str, Any] = Field(default={}, description="extra aiokafka producer settings")
    exactly_once: bool = Field(default=False, description="each window in one transaction with the source "
                               "offsets it makes safe (needs Kafka sources)")
    transactional_id: str | None = Field(default=None, description="default: rtstream-PIPELINE-SINK-HOSTNAME; "
                                         "stable across restarts of one replica, unique among replicas; workers, "
                                         "backfills and test runs add a suffix (rtstream.sinks.kafka.sink.transactional_id)")
    transaction_timeout: Duration = Field(default=60.0,
        description="exactly_once: the broker aborts a transaction open this long")

    @model_validator(mode="after")
    def _transactions_need_acks_all(self) -> KafkaSinkConfig:
        if self.exactly_once and self.acks not in ("all", -1):
            raise ValueError("exactly_once needs acks = \"all\" (transactions are idempotent writes)")
        return self


@register("sink", "kafka")
class KafkaSink(Sink):
    Config = KafkaSinkConfig

    async def start(self) -> None:
        await self._start_producer()
        self.partitioner = KeyPartitioner()
        if self.config.exactly_once:
            log.info("%s: transactional id %r", self.name, self.transactional_id, extra={"component": self.name})

    async def _start_producer(self) -> None:
        c = self.config
        txn: dict[str, Any] = {}
        if c.exactly_once:
            self.transactional_id = transactional_id(c.transactional_id or
                                                     f"rtstream-{self.context.pipeline}-{self.name}-{socket.gethostname()}",
                                                     self.context)
            txn = {"transactional_id": self.transactional_id, "enable_idempotence": True,
                   "transaction_timeout_ms": int(c.transaction_timeout * 1000)}
        self.producer = AIOKafkaProducer(
            **c.client_kwargs(f"rtstream-{self.context.pipeline}-{self.name}"),
            acks=c.acks, compression_type=c.compression, linger_ms=int(c.linger * 1000),
            max_request_size=c.max_request_size, **txn, **{"max_batch_size": c.max_request_size, **c.producer})
        try:
            await self.producer.start()  # with a transactional id: fences this id's previous incarnation
        except Exception as exc:
            await self.producer.stop()
            if c.exactly_once:
                raise RuntimeError(
                    f"{type(exc).__name__}: {exc} -- the broker refused a transactional producer id "
                    f"{self.transactional_id!r} (InitProducerId): does it support transactions, and may this "
                    "client use that id?") from exc
            raise

    def message_key(self, row: dict[str, Any], n: int = 0) -> bytes:
        """`window_start|key`; a row without a key adds its place in the window (`#n`), or a compacted
        topic would keep one row of the window."""
        if self.config.key_field is not None:
            return _key_bytes(row.get(self.config.key_field))
        keys = self.context.key_fields
        parts = [*(row.get(k) for k in self.context.window_fields), *(row.get(k) for k in keys)]
        if not keys:  # with workers each writes its share of the window: their places must not collide
            share = self.context.worker
            parts.append(f"#{n}" if share.count == 1 else f"#{share.index}.{n}")
        return "|".join("" if p is None else str(p) for p in parts).encode()

    @property
    def commits_source_offsets(self) -> bool:
        return bool(self.config.exactly_once)

    async def write(self, window: Window, rows: list[dict[str, Any]]) -> None:
        rejected = await self._send(rows)
        if rejected:
            raise RowsRejected(self.name, rejected)

    async def write_committing(self, window: Window, rows: list[dict[str, Any]], commit: WindowCommit) -> None:
        """The window's rows and the source offsets its writing makes safe, in one transaction."""
        try:
            async with self.producer.transaction():  # aborted if anything below raises
                rejected = await self._send(rows)
                for group, offsets in commit.group_offsets.items():
                    if offsets:
                        await self.producer.send_offsets_to_transaction(offsets, group)
        except Exception:
            # a fenced or failed transactional producer cannot go on: the retry starts a new one
            await self.producer.stop()
            await self._start_producer()
            raise
        if rejected:  # the transaction went through with the other rows
            raise RowsRejected(self.name, rejected)

    async def _send(self, rows: list[dict[str, Any]]) -> Rejected:
        """Rows go out as whole record batches, one or more per partition, partitioned by key as the
        Java client does (murmur2), and the write returns when every batch is acknowledged. A row
        that cannot be JSON (an int beyond 64 bits) or whose batch alone is larger than
        `max_request_size` (compressed, where the sink compresses) is not sent: it is returned with why,
        and so is a row the broker refuses for what it holds (`_refused`)."""
        partitions = sorted(await self.producer.partitions_for(self.config.topic))
        by_partition: dict[int, list[_Message]] = {}
        rejected: Rejected = []
        room = self.config.max_request_size - _RECORD_OVERHEAD
        for n, row in enumerate(rows):
            value = encode_row(row)
            if isinstance(value, str):
                rejected.append(([row], value))
                continue
            key = self.message_key(row, n)
            if len(key) + len(value) > room:  # a batch takes it whole; the broker would refuse it every time
                size = self._sent_size(key, value)
                if size > self.config.max_request_size:
                    rejected.append(([row], f"message of {size} bytes{' compressed' if self.config.compression else ''}"
                                            f" (a batch of its own) is larger than the sink's max_request_size ({self.config.max_request_size})"))
                    continue
            by_partition.setdefault(self.partitioner(key, partitions), []).append((row, key, value))
        return rejected + await self._refused(list(by_partition.items()))

    async def _refused(self, pending: list[tuple[int, list[_Message]]]) -> Rejected:
        """Send every partition's messages; return those the broker refuses for good for what they
        hold. A broker refuses a whole batch for one bad record (a schema it validates against, a
        topic's smaller max.message.bytes): a refused batch is split in halves and sent again, down to
        single rows, so the rest is written (a partition's rows after a refusal may then land after
        later batches of it). A refusal that names no cause (aiokafka reports INVALID_RECORD as
        UnknownError, and a broker's internal failure too) counts against a row only where the
        broker took other batches of the same partition in this write: where it takes none of 16
        parts (or of all the rows, split to the last), the broker is what fails, and the write goes
        to the sink's policy. Idempotent and transactional producers do not split: a refused batch
        breaks their sequence, so any refusal goes to the policy as it is."""
        splits_batches = not (self.config.exactly_once or self.config.producer.get("enable_idempotence"))
        refused: list[tuple[_Message, BaseException]] = []
        took: set[int] = set()  # partitions that took a batch of this write
        splits = 0
        while pending:
            sent = [chunk for p, messages in pending for chunk in await self._send_partition(p, messages)]
            outcomes = await asyncio.gather(*(ack for _, _, ack in sent), return_exceptions=True)
            pending, unnamed = [], {}
            for (p, messages, _), outcome in zip(sent, outcomes, strict=True):
                if not isinstance(outcome, BaseException):
                    took.add(p)
                    continue
                if not splits_batches or not isinstance(outcome, _FOR_WHAT_IT_HOLDS):
                    raise outcome
                if isinstance(outcome, UnknownError):
                    unnamed[p] = outcome
                if len(messages) > 1:
                    half = len(messages) // 2
                    pending += [(p, messages[:half]), (p, messages[half:])]
                else:
                    refused.append((messages[0], outcome))
            splits += 1
            splitting = {p for p, _ in pending}
            for p, outcome in unnamed.items():
                if p not in took and (splits >= _SPLITS_BEFORE_BLAMING_THE_BROKER or p not in splitting):
                    raise outcome
        return [([row], f"the broker refused it: {type(outcome).__name__}: {outcome}") for (row, _, _), outcome in refused]

    async def _send_partition(self, p: int, messages: list[_Message]) -> list[tuple[int, list[_Message], Any]]:
        """Partition p's messages in as few batches as hold them: (partition, messages, ack) each."""
        sent = []
        batch, first = self.producer.create_batch(), 0
        for i, (_, key, value) in enumerate(messages):
            if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start another
                sent.append((p, messages[first:i], await _send_batch(self.producer, batch, self.config.topic, p)))
                batch, first = self.producer.create_batch(), i
                batch.append(key=key, value=value, timestamp=None)
        sent.append((p, messages[first:], await _send_batch(self.producer, batch, self.config.topic, p)))
        return sent

    def _sent_size(self, key: bytes, value: bytes) -> int:
        """The bytes of a record batch holding this row alone, as the broker receives it (compressed
        with the sink's codec, framing and header included): built only for rows near or over the
        limit, which are rare."""
        builder = DefaultRecordBatchBuilder(2, _CODECS[self.config.compression], is_transactional=0, producer_id=-1,
                                            producer_epoch=-1, base_sequence=0, batch_size=1 << 62)
        builder.append(0, timestamp=None, key=key, value=value, headers=[])
        return len(builder.build())

    async def close(self) -> None:
        if hasattr(self, "producer"):
            await self.producer.stop()

    def describe(self) -> str:
        c = self.config
        eos = ", exactly once" if c.exactly_once else ""
        return f"kafka: {c.topic} @ {c.servers_label()} (acks {c.acks}, compression {c.compression or 'none'}{eos})"


_Message = tuple[dict[str, Any], bytes, bytes]  # row, key, value
_SPLITS_BEFORE_BLAMING_THE_BROKER = 5  # 1 + 2 + 4 + 8 + 16 batches of a partition, all refused
# refusals of a batch for what it holds, never for the broker's state (those are retried by aiokafka)
_FOR_WHAT_IT_HOLDS = (MessageSizeTooLargeError, RecordListTooLargeError, CorruptRecordException, UnknownError)
_CODECS = {None: DefaultRecordBatch.CODEC_NONE, "gzip": DefaultRecordBatch.CODEC_GZIP,
           "snappy": DefaultRecordBatch.CODEC_SNAPPY, "lz4": DefaultRecordBatch.CODEC_LZ4,
           "zstd": DefaultRecordBatch.CODEC_ZSTD}
_RECORD_OVERHEAD = 128  # bytes a batch adds around one record, at most: header, lengths, varints


async def _send_batch(producer: AIOKafkaProducer, batch: Any, topic: str, partition: int) -> Any:
    # closed, the batch is complete: the client sends it at once instead of lingering for more
    batch.close()
    return await producer.send_batch(batch, topic, partition=partition)


def transactional_id(base: str, context: Any) -> str:
    """`base` for the daemon's one process; `-wI` for worker I of `[daemon] workers` and the run's tag
    for a backfill (`-backfill-FROM-TO`) or a test run (`-test-RANDOM`) beside it. Producers sharing an
    id fence each other, transaction after transaction; the same worker restarted keeps its id and so
    fences its own previous incarnation (as Kafka Streams' per-task and Flink's per-subtask ids do)."""
    parts = [base]
    if context.worker.count > 1:
        parts.append(f"w{context.worker.index}")
    if context.run_tag:
        parts.append(context.run_tag)
    return "-".join(parts)


def _key_bytes(v: Any) -> bytes:
    if v is None:
        return b""
    if isinstance(v, bytes):
        return v
    return str(v).encode()
