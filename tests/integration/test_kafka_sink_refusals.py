"""A broker that refuses rows for what they hold: schema validation (Confluent Server, Redpanda; here
Tansu's embedded registry), which refuses a whole batch for one record that does not conform.

The Kafka sink splits a refused batch until the refused rows stand alone: those go to the dead
letters, the rest of each window is written, and the source's offsets go through. A broker that
refuses every row of a write is what fails: nothing is dead-lettered, the sink is retried by its
policy, and nothing is committed.
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid

import pytest
from aiokafka.errors import UnknownError

from rtstream.model.errors import RowsRejected
from rtstream.model.window import Window
from rtstream.runtime.context import Context
from rtstream.sinks.kafka.sink import KafkaSink
from rtstream.testing.peers.tansu import TansuBroker, create_topic
from tests.data import make_events
from tests.integration.test_kafka import committed, kafka_config
from tests.kafka_helpers import new_topics, produce, read_all
from tests.reference import tumbling_truth
from tests.support import Daemon, read_jsonl, run_cli, wait_until

WINDOW = Window(1_767_225_600_000, 1_767_225_900_000)
# results must carry an integer `flag`
SCHEMA = {"type": "object", "properties": {
    "value": {"type": "object", "properties": {"flag": {"type": "integer"}}, "required": ["flag"]}}}


@pytest.fixture(scope="module")
def strict_kafka(tmp_path_factory):
    with TansuBroker(schemas=tmp_path_factory.mktemp("schemas")) as broker:
        yield broker


def _pipeline(tmp_path, broker, rowfn, events, seed_partitions=2):
    src, out, group = new_topics(broker.bootstrap, seed_partitions, seed_partitions)
    (broker.schemas / f"{out}.json").write_text(json.dumps(SCHEMA))
    asyncio.run(produce(broker.bootstrap, src, events))
    cfg = kafka_config(tmp_path, broker.bootstrap, src, out, group=group)
    text = cfg.read_text().replace('flow = "events >> per_user >> results"', 'flow = "events >> per_user >> odd >> results"')
    cfg.write_text(text + f'\n[stages.odd]\ntype = "python"\ncall = "tests.faults.rowfns:{rowfn}"\n')
    return cfg, src, out, group


def test_rows_the_broker_refuses_are_dead_lettered_and_the_rest_written(tmp_path, strict_kafka):
    events = make_events(1500, span_s=900, seed=31, users=10)
    cfg, src, out, group = _pipeline(tmp_path, strict_kafka, "one_row_off_schema", events)
    res = run_cli("run", "-c", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    truth = tumbling_truth(events, 300, "user_id")
    good = {k for k in truth if k[1] != "u7"}
    got = [v for _, v in asyncio.run(read_all(strict_kafka.bootstrap, out, expect=len(good)))]
    assert {(v["window_start"], v["user_id"]) for v in got} == good
    assert all(v["events"] == truth[(v["window_start"], v["user_id"])]["events"] for v in got)
    dead = [d for d in read_jsonl(tmp_path / "dead.jsonl") if d["stage"] == "results"]
    assert sorted(d["window_start"] for d in dead) == sorted(k[0] for k in truth if k[1] == "u7")
    assert {d["reason"] for d in dead} == {"sink_rejected"}
    assert all("the broker refused it" in d["detail"] for d in dead)
    offsets = asyncio.run(committed(strict_kafka.bootstrap, group, src, 2))
    assert sum(offsets.values()) == len(events)  # the refused rows hold nothing back


def test_a_broker_refusing_every_row_holds_the_sink_and_dead_letters_nothing(tmp_path, strict_kafka):
    events = make_events(600, span_s=900, seed=32, users=10)
    cfg, src, out, group = _pipeline(tmp_path, strict_kafka, "every_row_off_schema", events, seed_partitions=1)
    with Daemon(cfg, tmp_path, "--set", "defaults.retry_delay=100ms", "--set", "defaults.max_retry_delay=300ms") as d:
        wait_until(lambda: d.stderr.count("sink results failed on window") >= 3, 60, what="retries")
        assert d.proc.poll() is None  # alive, retrying: the policy (halt by default) decides, not the sink
        assert [x for x in read_jsonl(tmp_path / "dead.jsonl") if x["stage"] == "results"] == []
        assert asyncio.run(committed(strict_kafka.bootstrap, group, src, 1))[0] in (None, 0)
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0


async def _write(tmp_path, broker, topic, rows):
    sink = KafkaSink("out", KafkaSink.Config(type="kafka", bootstrap_servers=broker.bootstrap, topic=topic),
                     Context(pipeline="p", state_dir=tmp_path, key_fields=["user_id"]))
    await sink.start()
    try:
        await sink.write(WINDOW, rows)
    finally:
        await sink.close()


def _strict_topic(broker):
    topic = f"strict-{uuid.uuid4().hex[:8]}"
    (broker.schemas / f"{topic}.json").write_text(json.dumps(SCHEMA))
    asyncio.run(create_topic(broker.bootstrap, topic, 1))
    return topic


def test_the_sink_splits_a_refused_batch_down_to_the_refused_rows(tmp_path, strict_kafka):
    topic = _strict_topic(strict_kafka)
    rows = [{"window_start": WINDOW.start_iso, "user_id": f"u{i}", "flag": "bad" if i in (3, 70) else i}
            for i in range(100)]
    with pytest.raises(RowsRejected) as info:
        asyncio.run(_write(tmp_path, strict_kafka, topic, rows))
    assert sorted(r["user_id"] for rejected, _ in info.value.rejected for r in rejected) == ["u3", "u70"]
    assert all("the broker refused it" in why for _, why in info.value.rejected)
    got = asyncio.run(read_all(strict_kafka.bootstrap, topic, expect=98))
    assert sorted(v["flag"] for _, v in got) == [i for i in range(100) if i not in (3, 70)]


def test_a_partition_that_takes_nothing_is_a_failing_broker_not_bad_rows(tmp_path, strict_kafka):
    topic = _strict_topic(strict_kafka)
    rows = [{"window_start": WINDOW.start_iso, "user_id": f"u{i}", "flag": "bad"} for i in range(40)]
    with pytest.raises(UnknownError):  # to the sink's policy: retried, nothing dead-lettered
        asyncio.run(_write(tmp_path, strict_kafka, topic, rows))
