"""The Kafka sink's message keys: an aggregate's rows by window and key, a count window's with its
window_id, rows without a key by their place in the window (and the worker's index with workers),
so a compacted topic keeps every row."""

from __future__ import annotations

from rtstream.model.worker import WorkerShare
from rtstream.runtime.context import Context
from rtstream.sinks.kafka.sink import KafkaSink


def sink(tmp_path, **context) -> KafkaSink:
    config = KafkaSink.Config(type="kafka", bootstrap_servers="127.0.0.1:1", topic="t")
    return KafkaSink("out", config, Context(pipeline="p", state_dir=tmp_path, **context))


def test_rows_with_a_key_are_keyed_by_window_and_key(tmp_path):
    s = sink(tmp_path, key_fields=["user"])
    assert s.message_key({"window_start": "S", "user": "u1"}, 7) == b"S|u1"


def test_count_windows_add_their_window_id(tmp_path):
    s = sink(tmp_path, key_fields=["user"], window_fields=["window_start", "window_id"])
    assert s.message_key({"window_start": "S", "window_id": "ev/0@40", "user": "u1"}, 0) == b"S|ev/0@40|u1"


def test_rows_without_a_key_are_keyed_by_their_place_and_the_worker(tmp_path):
    one = sink(tmp_path)
    assert [one.message_key({"window_start": "S"}, n) for n in range(3)] == [b"S|#0", b"S|#1", b"S|#2"]
    second = sink(tmp_path, worker=WorkerShare(index=1, count=2))
    assert [second.message_key({"window_start": "S"}, n) for n in range(2)] == [b"S|#1.0", b"S|#1.1"]
