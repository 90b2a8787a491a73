"""A finite Kafka run decides the end of its input from the broker's end offsets where they agree
with what was fetched, and falls back to a quiet period, saying so once, where they do not.

Tansu reports end offsets short after batched produces (a real cluster does not) and exactly after
records produced one request each, so one broker shows both cases.
"""

from __future__ import annotations

import asyncio
import re

from aiokafka import AIOKafkaProducer

from tests.data import make_events
from tests.integration.test_kafka import check_against_truth, kafka_config
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
