"""A Kafka AssetWatcher as a DAG file writes it, read into what rtstream's Kafka source needs, in each
form Airflow's docs show; and the watchers rtstream refuses, with the reason."""

from __future__ import annotations

import json

import pytest

from rtstream.airflow.assets import Asset
from rtstream.airflow.watchers import (
    AssetWatcher,
    AwaitMessageTrigger,
    KafkaMessage,
    KafkaMessageQueueTrigger,
    MessageQueueTrigger,
    WatcherRefused,
    kafka_watch,
    watched_assets,
)


def fn(message, *args, **kwargs):
    return [json.loads(message.value()), args, kwargs]


def test_the_queue_uri_form():
    w = kafka_watch(AssetWatcher("w", MessageQueueTrigger(queue="kafka://127.0.0.1:9092/a,b", apply_function=fn)))
    assert (w.watcher, w.bootstrap_servers, w.topics, w.poll_interval) == ("w", "127.0.0.1:9092", ["a", "b"], 5.0)
    assert w.apply(KafkaMessage({"value": '{"x": 1}'}, "a")) == [{"x": 1}, (), {}]


def test_the_scheme_form_takes_its_broker_from_the_airflow_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DEFAULT", json.dumps({"conn_type": "kafka",
                                                                  "extra": {"bootstrap.servers": "127.0.0.1:1"}}))
    t = MessageQueueTrigger(scheme="kafka", topics=["t"], apply_function=fn, apply_function_args=[1],
                            apply_function_kwargs={"k": 2}, poll_interval=2)
    w = kafka_watch(AssetWatcher("w", t))
    assert (w.bootstrap_servers, w.topics, w.poll_interval) == ("127.0.0.1:1", ["t"], 2.0)
    assert w.apply(KafkaMessage({"value": "3"}, "t")) == [3, (1,), {"k": 2}]


def test_the_kafka_providers_own_triggers(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_MINE", json.dumps({"extra": json.dumps({"bootstrap.servers": "h:2"})}))
    w = kafka_watch(AssetWatcher("w", AwaitMessageTrigger(topics=["x"], apply_function=fn, kafka_config_id="mine")))
    assert (w.bootstrap_servers, w.topics) == ("h:2", ["x"])
    w = kafka_watch(AssetWatcher("w", KafkaMessageQueueTrigger(topics="y", apply_function=fn,
                                                                bootstrap_servers="h:3")))
    assert (w.bootstrap_servers, w.topics) == ("h:3", ["y"])


@pytest.mark.parametrize("trigger, reason", [
    (MessageQueueTrigger(queue="https://sqs.us-east-1.amazonaws.com/1/q", apply_function=fn), "not a Kafka queue"),
    (MessageQueueTrigger(scheme="redis", topics=["t"], apply_function=fn), "scheme=\"kafka\""),
    (MessageQueueTrigger(queue="kafka://h:1/", apply_function=fn), "no topic"),
    (MessageQueueTrigger(queue="kafka://h:1/t"), "apply_function is required"),
    (MessageQueueTrigger(queue="kafka://h:1/t", apply_function="nomodule_xyz.f"), "cannot be imported"),
    (MessageQueueTrigger(queue="kafka://h:1/t", apply_function="nodots"), "dotted"),
    (MessageQueueTrigger(scheme="kafka", topics=["t"], apply_function=fn), "no Kafka broker"),
    (MessageQueueTrigger(queue="kafka://h:1/t", apply_function=fn, poll_interval=0), "poll_interval"),
    (object(), "not run by rtstream"),
])
def test_what_rtstream_cannot_run_is_refused_with_the_reason(trigger, reason, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_KAFKA_DEFAULT", raising=False)
    with pytest.raises(WatcherRefused, match=reason):
        kafka_watch(AssetWatcher("w", trigger))


def test_a_message_as_confluent_kafka_gives_it():
    m = KafkaMessage({"key": "k", "value": "v"}, "t")
    assert (m.key(), m.value(), m.topic(), m.error(), len(m)) == (b"k", b"v", "t", None, 1)
    assert KafkaMessage({"key": None, "value": None}, None).value() is None


def test_the_watched_assets_of_a_schedule():
    class Dag:
        def __init__(self, schedule):
            self.schedule = schedule

    watched = Asset("q", watchers=[AssetWatcher("w", MessageQueueTrigger(queue="kafka://h:1/t"))])
    assert watched_assets(Dag([watched])) == [watched]
    assert watched_assets(Dag(watched | Asset("other"))) == [watched]
    assert watched_assets(Dag([Asset("plain")])) == [] and watched_assets(Dag(None)) == []
