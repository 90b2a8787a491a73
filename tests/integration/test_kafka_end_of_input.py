"""A finite Kafka run decides the end of its input from the broker's end offsets where they agree
with what was fetched, and falls back to a quiet period, saying so once, where they do not.

Tansu reports end offsets short after batched produces (a real cluster does not) and exactly after
records produced one request each, so one broker shows both cases.
"""

from __future__ import annotations

import asyncio
import re
import uuid

from aiokafka import AIOKafkaProducer

from tests.data import make_events
from tests.integration.test_kafka import FAST_CONSUMER, check_against_truth, kafka_config
from tests.kafka_helpers import new_topics, produce, read_all
from tests.reference import tumbling_truth
from tests.support import run_cli

CAUTION = "deciding the end of input by a quiet period as well"


async def produce_one_by_one(bootstrap: str, topic: str, events: list[dict]) -> None:
    import orjson

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    try:
        for e in events:  # each record acknowledged before the next is sent: one record per request
            await (await producer.send(topic, orjson.dumps(e), key=e["user_id"].encode()))
    finally:
        await producer.stop()


def _finite_run(tmp_path, kafka, events, src, out):
    res = run_cli("run", "-c", str(kafka_config(tmp_path, kafka.bootstrap, src, out)))
    assert res.returncode == 0, res.stderr
    truth = tumbling_truth(events, 300, "user_id")
    check_against_truth(asyncio.run(read_all(kafka.bootstrap, out, expect=len(truth))), truth)
    assert re.search(r"reached the end of every assigned partition, [\d.]+s after the last record", res.stderr)
    return res.stderr


def test_end_offsets_that_agree_decide_the_end_without_a_quiet_period(tmp_path, kafka):
    src, out, _ = new_topics(kafka.bootstrap, 2, 2)
    events = make_events(600, span_s=1800, seed=11)
    asyncio.run(produce_one_by_one(kafka.bootstrap, src, events))
    log = _finite_run(tmp_path, kafka, events, src, out)
    assert CAUTION not in log


def test_end_offsets_behind_what_was_read_fall_back_to_a_quiet_period_said_once(tmp_path, kafka):
    src, out, _ = new_topics(kafka.bootstrap, 2, 2)
    events = make_events(6000, span_s=1800, seed=12)
    asyncio.run(produce(kafka.bootstrap, src, events))  # batched: Tansu's end offsets run short
    log = _finite_run(tmp_path, kafka, events, src, out)
    assert log.count(CAUTION) == 1


async def produce_in_transactions(bootstrap: str, topic: str, events: list[dict], per_transaction: int) -> None:
    import orjson

    from tests.shims import tansu_txn

    tansu_txn.install()  # Tansu needs InitProducerId v3; a real cluster does not
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"end-{uuid.uuid4().hex}",
                                enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for i in range(0, len(events), per_transaction):
            async with producer.transaction():
                for e in events[i:i + per_transaction]:
                    await producer.send(topic, orjson.dumps(e), key=e["user_id"].encode())
    finally:
        await producer.stop()


def test_input_written_in_transactions_ends_past_the_last_commit_marker(tmp_path, kafka):
    """Each transaction leaves a commit marker after its records, so the end offset is one past the
    last record's offset + 1; the end is decided on the consumer's position, which moves past it (a
    run deciding on the offset after the last record never ended)."""
    src, out, _ = new_topics(kafka.bootstrap, 2, 2)
    events = make_events(900, span_s=1800, seed=13)
    asyncio.run(produce_in_transactions(kafka.bootstrap, src, events, per_transaction=100))
    cfg = kafka_config(tmp_path, kafka.bootstrap, src, out, consumer={**FAST_CONSUMER, "isolation_level": "read_committed"})
    res = run_cli("run", "-c", str(cfg), timeout=90)
    assert res.returncode == 0, res.stderr
    truth = tumbling_truth(events, 300, "user_id")
    check_against_truth(asyncio.run(read_all(kafka.bootstrap, out, expect=len(truth))), truth)
    assert "reached the end of every assigned partition" in res.stderr
