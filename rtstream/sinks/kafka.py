"""Kafka via aiokafka: each window's rows as JSON messages, keyed so a replay repeats the keys.

The message key is `window_start|key` (or the row's `key_field`), so a compacted topic keeps one
value per (window, key) however often a window is replayed. `write` returns only when the broker
has acknowledged every message (per `acks`).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from pydantic import Field

from rtstream.config.durations import Duration
from rtstream.core.record import Window
from rtstream.core.registry import register
from rtstream.kafka_settings import KafkaConnection
from rtstream.sinks.base import Sink, SinkConfig


class KafkaSinkConfig(SinkConfig, KafkaConnection):
    topic: str
    key_field: str | None = None
    format: Literal["json"] = "json"
    acks: Literal["all", 0, 1, -1] = "all"
    compression: Literal["gzip", "lz4", "zstd", "snappy"] | None = None
    linger: Duration = 0.005
    max_request_size: int = Field(default=1_048_576, ge=1024)
    producer: dict[str, Any] = {}


@register("sink", "kafka")
class KafkaSink(Sink):
    Config = KafkaSinkConfig

    async def start(self) -> None:
        c = self.config
        self.producer = AIOKafkaProducer(
            **c.client_kwargs(f"rtstream-{self.context.pipeline}-{self.name}"),
            acks=c.acks, compression_type=c.compression, linger_ms=int(c.linger * 1000),
            max_request_size=c.max_request_size, **c.producer)
        await self.producer.start()
        self.partitioner = DefaultPartitioner()

    def message_key(self, row: dict[str, Any]) -> bytes:
        if self.config.key_field is not None:
            return _key_bytes(row.get(self.config.key_field))
        parts = [row.get("window_start"), *(row.get(k) for k in self.context.key_fields)]
        return "|".join("" if p is None else str(p) for p in parts).encode()

    async def write(self, window: Window, rows: list[dict[str, Any]]) -> None:
        """Rows go out as whole record batches, one or more per partition, partitioned by key as the
        Java client does (murmur2), and the write returns when every batch is acknowledged."""
        topic, dumps, producer = self.config.topic, orjson.dumps, self.producer
        partitions = sorted(await producer.partitions_for(topic))
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for row in rows:
            key = self.message_key(row)
            p = self.partitioner(key, partitions, partitions)
            by_partition.setdefault(p, []).append((key, dumps(row, default=str)))
        acks = []
        for p, items in by_partition.items():
            batch = producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start another
                    acks.append(await producer.send_batch(batch, topic, partition=p))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            acks.append(await producer.send_batch(batch, topic, partition=p))
        await asyncio.gather(*acks)

    async def close(self) -> None:
        if hasattr(self, "producer"):
            await self.producer.stop()

    def describe(self) -> str:
        c = self.config
        return f"kafka: {c.topic} @ {c.servers_label()} (acks {c.acks}, compression {c.compression or 'none'})"


def _key_bytes(v: Any) -> bytes:
    if v is None:
        return b""
    if isinstance(v, bytes):
        return v
    return str(v).encode()
