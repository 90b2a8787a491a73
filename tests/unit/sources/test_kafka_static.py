"""The static share of a Kafka source's partitions, and how a worker learns which share is its own."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from rtstream.config.load import load_settings
from rtstream.model.errors import ConfigError
from rtstream.model.worker import WorkerShare
from rtstream.run.workers import WorkerSupervisor, split_problem
from rtstream.sources.kafka.static import share_of

DOC = {
    "pipeline": {"name": "t", "flow": "src >> agg >> out"},
    "window": {"size": "5m"},
    "sources": {"src": {"type": "kafka", "bootstrap_servers": "127.0.0.1:1", "topics": ["a", "b"], "group_id": "g",
                        "assignment": "static"}},
    "stages": {"agg": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}}},
    "sinks": {"out": {"type": "stdout"}},
    "daemon": {"workers": 3},
}

partition_sets = st.lists(st.tuples(st.sampled_from(["a", "b", "orders"]), st.integers(0, 40)), unique=True)


@given(partition_sets, st.integers(1, 8))
def test_the_shares_are_disjoint_cover_everything_and_ignore_the_listing_order(items, count):
    partitions = [TopicPartition(t, p) for t, p in items]
    shares = [share_of(partitions, WorkerShare(index=i, count=count)) for i in range(count)]
    assert sorted(tp for s in shares for tp in s) == sorted(partitions)
    assert len({tp for s in shares for tp in s}) == len(partitions)
    assert shares == [share_of(list(reversed(partitions)), WorkerShare(index=i, count=count)) for i in range(count)]


@given(partition_sets, partition_sets, st.integers(2, 8))
def test_partitions_added_later_never_move_a_partition_to_another_worker(before, added, count):
    """A worker restarted after partitions (or topics) were added reads what it read before, plus
    new ones: none of its old partitions is now another worker's, which still reads it."""
    old = [TopicPartition(t, p) for t, p in before]
    new = old + [TopicPartition(t, p) for t, p in added]
    for i in range(count):
        worker = WorkerShare(index=i, count=count)
        assert set(share_of(old, worker)) <= set(share_of(new, worker))


def test_a_topic_listed_twice_is_read_once():
    partitions = [TopicPartition("a", p) for p in range(4)] * 2
    shares = [share_of(partitions, WorkerShare(index=i, count=2)) for i in range(2)]
    assert sorted(tp for s in shares for tp in s) == sorted(set(partitions))


def test_one_process_reads_everything():
    partitions = [TopicPartition("a", p) for p in range(4)]
    assert share_of(partitions, WorkerShare()) == partitions


def test_static_with_a_pattern_is_refused():
    doc = {**DOC, "sources": {"src": {**DOC["sources"]["src"], "topics": None, "pattern": "a.*"}}}
    doc["sources"]["src"].pop("topics")
    with pytest.raises(ConfigError) as info:
        load_settings(doc=doc, env={})
    assert 'assignment = "static" reads the partitions of named topics' in str(info.value)


def test_each_worker_is_told_its_index_and_the_count(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("")
    settings = load_settings(doc=DOC, env={})
    assert split_problem(settings) is None  # static Kafka sources are split by the supervisor
    settings.path = path
    supervisor = WorkerSupervisor(settings)
    for w in supervisor.workers:
        cmd = supervisor.command(w)
        sets = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--set"]
        worker = load_settings(doc=DOC, overrides=sets, env={}).root.daemon
        assert (worker.workers, worker.worker) == (1, WorkerShare(index=w.index, count=3))


def test_a_worker_index_must_be_below_the_count():
    with pytest.raises(ConfigError) as info:
        load_settings(doc=DOC, overrides=["daemon.worker={index = 3, count = 3}"], env={})
    assert "daemon.worker" in str(info.value)
