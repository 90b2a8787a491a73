"""The Kafka sink on its own against a real broker: a window bigger than one batch arrives whole,
each row on the partition the Java client would choose for its key, with the sink's default batch
size or one the user sets."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner

from rtstream.model.window import Window
from rtstream.runtime.context import Context
from rtstream.sinks.kafka.sink import KafkaSink
from rtstream.testing.peers.tansu import create_topic

START_MS = 1_767_225_600_000


async def read_with_partitions(bootstrap: str, topic: str, expect: int) -> list[tuple[int, bytes, dict]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"r-{uuid.uuid4().hex}",
                                auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=10)
    await consumer.start()
    out: list[tuple[int, bytes, dict]] = []
    try:
        async with asyncio.timeout(60):
            while len(out) < expect:
                for tp, msgs in (await consumer.getmany(timeout_ms=200)).items():
                    out += [(tp.partition, m.key, orjson.loads(m.value)) for m in msgs]
    finally:
        await consumer.stop()
    return out


@pytest.mark.parametrize("producer", [{}, {"max_batch_size": 16384}], ids=["default batches", "user's batches"])
def test_a_window_of_many_batches_arrives_whole_on_the_keys_partitions(tmp_path, kafka, producer):
    topic = f"sink-{uuid.uuid4().hex[:8]}"
    asyncio.run(create_topic(kafka.bootstrap, topic, 3))
    window = Window(START_MS, START_MS + 300_000)
    rows = [{"window_start": window.start_iso, "window_end": window.end_iso, "user_id": f"u{i}", "events": i,
             "note": "x" * 500} for i in range(6000)]  # about 3.5 MB: several batches per partition either way
    context = Context(pipeline="p", state_dir=tmp_path, key_fields=["user_id"])
    config = KafkaSink.Config(type="kafka", bootstrap_servers=kafka.bootstrap, topic=topic, producer=producer)
    sink = KafkaSink("out", config, context)

    async def write() -> int:
        await sink.start()
        try:
            await sink.write(window, rows)
            return int(sink.producer._message_accumulator._batch_size)
        finally:
            await sink.close()

    batch_size = asyncio.run(write())
    assert batch_size == producer.get("max_batch_size", config.max_request_size)
    got = asyncio.run(read_with_partitions(kafka.bootstrap, topic, len(rows)))
    assert sorted(v["events"] for _, _, v in got) == list(range(6000))  # each row once
    default = DefaultPartitioner()
    for partition, key, value in got:
        assert key == f"{window.start_iso}|{value['user_id']}".encode()
        assert partition == default(key, [0, 1, 2], [0, 1, 2])


@pytest.mark.parametrize("compression", ["lz4", "zstd", "gzip", "snappy"])
def test_a_row_over_max_request_size_that_compresses_below_it_is_written(tmp_path, kafka, compression):
    """The limit is on what the broker receives: 2 MiB of repetitive text is a few KiB compressed."""
    topic = f"sink-{uuid.uuid4().hex[:8]}"
    asyncio.run(create_topic(kafka.bootstrap, topic, 1))
    window = Window(START_MS, START_MS + 300_000)
    rows = [{"window_start": window.start_iso, "user_id": f"u{i}", "blob": "x" * (2 << 20) if i == 1 else ""}
            for i in range(3)]
    config = KafkaSink.Config(type="kafka", bootstrap_servers=kafka.bootstrap, topic=topic, compression=compression)
    sink = KafkaSink("out", config, Context(pipeline="p", state_dir=tmp_path, key_fields=["user_id"]))

    async def write() -> None:
        await sink.start()
        try:
            await sink.write(window, rows)  # raises RowsRejected if any row is refused
        finally:
            await sink.close()

    asyncio.run(write())
    got = asyncio.run(read_with_partitions(kafka.bootstrap, topic, len(rows)))
    assert sorted((v["user_id"], len(v["blob"])) for _, _, v in got) == [("u0", 0), ("u1", 2 << 20), ("u2", 0)]
