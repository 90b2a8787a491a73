"""Parsed Kafka messages (rtstream.sources.kafka.records) equal what aiokafka's ConsumerRecords say.

A consumer with `value_deserializer=as_parsed` skips the ConsumerRecord built per message; these
tests read one topic both ways, through real batches from a real broker, and compare every field
the engine reads. An aiokafka upgrade that moves the hook fails `test_hook_is_installed`.
"""

from __future__ import annotations

import asyncio
import uuid

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from rtstream.sources.kafka.records import as_parsed, install
from rtstream.testing.peers.tansu import create_topic


def test_hook_is_installed() -> None:
    assert install(), f"aiokafka {aiokafka.__version__} was not checked against kafka_records; check the hook"


async def _read(bootstrap: str, topic: str, expect: int, isolation: str, **kw: object) -> list[object]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"r-{uuid.uuid4().hex}",
                                auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=10,
                                session_timeout_ms=6000, heartbeat_interval_ms=300, isolation_level=isolation, **kw)
    await consumer.start()
    out: list[object] = []
    try:
        async with asyncio.timeout(60):
            while len(out) < expect:
                data = await consumer.getmany(timeout_ms=200, max_records=7)  # several partial takes of a batch
                for msgs in data.values():
                    out.extend(msgs)
    finally:
        await consumer.stop()
    return out


def test_parsed_records_equal_consumer_records(kafka) -> None:
    topic = f"parsed-{uuid.uuid4().hex[:6]}"

    async def scenario() -> tuple[list[object], list[object]]:
        await create_topic(kafka.bootstrap, topic, 2)
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, linger_ms=20)
        await producer.start()
        try:
            futs = []
            for i in range(300):
                value = None if i % 50 == 45 else b'{"n": %d, "big": 123456789012345678901234567890}' % i
                key = None if i % 7 == 0 and value is not None else f"k{i % 13}".encode()  # tombstones keyed
                headers = [("h", b"x")] if i % 3 == 0 else None
                futs.append(await producer.send(topic, value, key=key, partition=i % 2,
                                                timestamp_ms=1_767_225_600_000 + i, headers=headers))
            await asyncio.gather(*futs)
        finally:
            await producer.stop()
        plain = await _read(kafka.bootstrap, topic, 300, "read_uncommitted")
        parsed = await _read(kafka.bootstrap, topic, 300, "read_uncommitted", value_deserializer=as_parsed)
        return plain, parsed

    plain, parsed = asyncio.run(scenario())
    assert all(type(m) is ConsumerRecord for m in plain)
    assert not any(isinstance(m, ConsumerRecord) for m in parsed)

    def fields(msgs: list[object]) -> list[tuple[object, ...]]:
        return sorted((m.offset, m.timestamp, m.key, m.value) for m in msgs)  # type: ignore[attr-defined]

    assert len(parsed) == 300
    assert fields(parsed) == fields(plain)


def test_transaction_markers_stay_skipped(kafka) -> None:
    """read_committed over transactions: the fetcher still drops the control records (commit markers)
    for parsed messages. (Tansu shows aborted records to read_committed consumers, so aborts are not
    tested here.)"""
    from tests.shims import tansu_txn

    tansu_txn.install()  # Tansu needs InitProducerId v3; a real cluster does not
    topic = f"parsed-tx-{uuid.uuid4().hex[:6]}"

    async def scenario() -> list[object]:
        await create_topic(kafka.bootstrap, topic, 1)
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, transactional_id=f"t-{uuid.uuid4().hex}",
                                    enable_idempotence=True, acks="all")
        await producer.start()
        try:
            for n in range(3):
                async with producer.transaction():
                    for i in range(20):
                        await producer.send(topic, b'{"tx": %d, "i": %d}' % (n, i), partition=0)
        finally:
            await producer.stop()
        return await _read(kafka.bootstrap, topic, 60, "read_committed", value_deserializer=as_parsed)

    got = asyncio.run(scenario())
    values = [m.value for m in got]  # type: ignore[attr-defined]
    assert sorted(values) == sorted(b'{"tx": %d, "i": %d}' % (n, i) for n in range(3) for i in range(20))
    offsets = [m.offset for m in got]  # type: ignore[attr-defined]
    assert offsets == sorted(offsets) and len(set(offsets)) == 60
