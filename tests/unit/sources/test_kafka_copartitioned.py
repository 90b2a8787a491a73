"""Co-partitioned static shares: a join's topics split so partition p of each is on worker p mod N."""

from __future__ import annotations

import copy

from aiokafka import TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from rtstream.config.load import load_settings
from rtstream.model.worker import WorkerShare
from rtstream.run.join_inputs import co_partitioned_topics
from rtstream.run.workers import WorkerSupervisor, split_problem
from rtstream.sources.kafka.static import share_of, unalike_problem


def kafka(topics: list[str], assignment: str = "static") -> dict[str, object]:
    return {"type": "kafka", "bootstrap_servers": "127.0.0.1:1", "topics": topics, "group_id": f"g-{topics[0]}",
            "assignment": assignment}


JOIN = {
    "pipeline": {"name": "t", "flow": "[orders, payments] >> match >> out"},
    "window": {"size": "1m"},
    "sources": {"orders": kafka(["orders"]), "payments": kafka(["payments", "refunds"])},
    "stages": {"match": {"type": "join", "left": "orders", "right": "payments", "on": "id"}},
    "sinks": {"out": {"type": "stdout"}},
    "daemon": {"workers": 2},
}


@given(st.integers(1, 8), st.lists(st.integers(1, 12), min_size=1, max_size=4), st.data())
def test_every_partition_p_of_every_co_partitioned_topic_is_on_worker_p_mod_n(count, sizes, data):
    topics = [f"t{i}" for i in range(len(sizes))]
    partitions = [TopicPartition(t, p) for t, n in zip(topics, sizes, strict=True) for p in range(n)]
    partitions = data.draw(st.permutations(partitions))
    for i in range(count):
        share = share_of(partitions, WorkerShare(index=i, count=count, co_partitioned=[topics]))
        assert share == sorted(tp for tp in partitions if tp.partition % count == i)


def test_other_topics_keep_their_offset_rule():
    partitions = [TopicPartition(t, p) for t in ("orders", "clicks") for p in range(4)]
    co = WorkerShare(index=0, count=2, co_partitioned=[["orders"]])
    plain = WorkerShare(index=0, count=2)
    assert [tp for tp in share_of(partitions, co) if tp.topic == "clicks"] == \
        [tp for tp in share_of(partitions, plain) if tp.topic == "clicks"]
    assert [tp.partition for tp in share_of(partitions, co) if tp.topic == "orders"] == [0, 2]


def test_the_supervisor_tells_every_worker_the_topics_of_the_join(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("")
    settings = load_settings(doc=copy.deepcopy(JOIN), env={})
    assert split_problem(settings) is None
    assert co_partitioned_topics(settings) == [["orders", "payments", "refunds"]]
    settings.path = path
    supervisor = WorkerSupervisor(settings)
    for w in supervisor.workers:
        cmd = supervisor.command(w)
        sets = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--set"]
        worker = load_settings(doc=copy.deepcopy(JOIN), overrides=sets, env={}).root.daemon.worker
        assert worker == WorkerShare(index=w.index, count=2, co_partitioned=[["orders", "payments", "refunds"]])


def test_a_flow_without_a_join_keeps_every_topic_on_the_offset_rule():
    doc = copy.deepcopy(JOIN)
    doc["pipeline"]["flow"] = "[orders, payments] >> out"
    doc["stages"] = {}
    assert co_partitioned_topics(load_settings(doc=doc, env={})) == []


def test_a_table_join_reads_its_stream_and_table_co_partitioned():
    doc = copy.deepcopy(JOIN)
    doc["stages"] = {"match": {"type": "table_join", "stream": "orders", "table": "payments", "on": "id"}}
    assert co_partitioned_topics(load_settings(doc=doc, env={})) == [["orders", "payments", "refunds"]]


def test_a_group_mode_side_of_a_join_is_refused_with_workers():
    doc = copy.deepcopy(JOIN)
    doc["sources"]["payments"] = kafka(["payments"], "group")
    why = split_problem(load_settings(doc=doc, env={}))
    assert why is not None and "join 'match': payments" in why and 'assignment = "static"' in why
    doc["daemon"]["workers"] = 1
    assert split_problem(load_settings(doc=doc, env={})) is None  # one process sees both sides


def test_topics_partitioned_unlike_are_refused_with_workers_only():
    partitions = [TopicPartition("orders", p) for p in range(4)] + [TopicPartition("payments", p) for p in range(3)]
    groups = [["orders", "payments"]]
    why = unalike_problem(partitions, WorkerShare(index=1, count=2, co_partitioned=groups), ["payments"])
    assert why is not None and "orders has 4 partitions and payments has 3" in why and "partitioned alike" in why
    assert unalike_problem(partitions, WorkerShare(co_partitioned=groups), ["payments"]) is None
    assert unalike_problem(partitions, WorkerShare(index=0, count=2), ["payments"]) is None
