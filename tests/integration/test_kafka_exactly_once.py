"""exactly_once: each window's rows and the offsets it makes safe in one Kafka transaction.

Tansu runs transactions once aiokafka asks for its producer id with InitProducerId v3 (see
tests/shims/tansu_txn.py; a real cluster needs no shim). What Tansu cannot show: it leaves aborted
records visible to read_committed consumers, so no test here relies on an abort being hidden.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from rtstream.config.load import load_settings
from rtstream.model.errors import ConfigError
from tests.data import make_events
from tests.integration.test_kafka import check_against_truth, committed, kafka_config
from tests.kafka_helpers import new_topics, produce, read_all
from tests.reference import tumbling_truth
from tests.support import Daemon, read_jsonl, run_cli, wait_until

SHIM = {"PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent.parent / "shims"),
                                       os.environ.get("PYTHONPATH", "")])}
EOS = {"exactly_once": True, "transaction_timeout": "20s"}


def doc(source, **sink):
    return {"pipeline": {"flow": "src >> agg >> out"}, "window": {"size": "5m"},
            "sources": {"src": source}, "stages": {"agg": {"type": "aggregate", "aggregates": {"n": "count()"}}},
            "sinks": {"out": {"type": "kafka", "bootstrap_servers": "127.0.0.1:9", "topic": "t", **sink}}}


KAFKA_SOURCE = {"type": "kafka", "bootstrap_servers": "127.0.0.1:9", "topics": ["i"], "group_id": "g"}


def test_exactly_once_is_refused_where_it_cannot_hold():
    load_settings(doc=doc(KAFKA_SOURCE, exactly_once=True), env={})
    cases = [(doc({"type": "generator", "count": 1}, exactly_once=True),
              "sinks.out.exactly_once: needs every source to be Kafka"),
             (doc(KAFKA_SOURCE, exactly_once=True, acks=1), 'exactly_once needs acks = "all"')]
    two = doc(KAFKA_SOURCE, exactly_once=True)
    two["sinks"]["out2"] = {**two["sinks"]["out"]}
    two["pipeline"]["flow"] = "src >> agg >> [out, out2]"
    cases.append((two, "only one sink can commit the offsets"))
    for bad, msg in cases:
        with pytest.raises(ConfigError, match=msg):
            load_settings(doc=bad, env={})


def test_finite_run_commits_its_offsets_in_the_transactions(tmp_path, kafka):
    src, out, group = new_topics(kafka.bootstrap, 3, 2)
    events = make_events(6000, span_s=1800, seed=13)
    asyncio.run(produce(kafka.bootstrap, src, events))
    cfg = kafka_config(tmp_path, kafka.bootstrap, src, out, group=group, sink=EOS)
    res = run_cli("run", "-c", str(cfg), env=SHIM)
    assert res.returncode == 0, res.stderr
    truth = tumbling_truth(events, 300, "user_id")
    messages = asyncio.run(read_all(kafka.bootstrap, out, expect=len(truth), isolation_level="read_committed"))
    assert len(messages) == len(truth)
    check_against_truth(messages, truth)
    # the consumer committed nothing itself: these came with the last window's transaction
    offsets = asyncio.run(committed(kafka.bootstrap, group, src, 3))
    assert sum(offsets.values()) == len(events)


def test_sigkill_and_restart_sends_no_written_window_again(tmp_path, kafka):
    src, out, group = new_topics(kafka.bootstrap, 3, 2)
    events = make_events(8000, span_s=3600, seed=17)
    first, second = events[:4000], events[4000:]
    asyncio.run(produce(kafka.bootstrap, src, first))
    cfg = kafka_config(tmp_path, kafka.bootstrap, src, out, group=group, stop_at_end=False, sink=EOS,
                       window={"idle_timeout": "1h"})
    done_first = tumbling_truth(first[:3000], 300, "user_id")  # windows surely closed by the first 4000
    with Daemon(cfg, tmp_path, env=SHIM) as d:
        wait_until(lambda: len({(v["window_start"], v["user_id"]) for _, v in
                                asyncio.run(read_all(kafka.bootstrap, out, idle_s=0.5))}) >= len(done_first),
                   60, interval=0.5, what="the first windows written")
        wait_until(lambda: sum(asyncio.run(committed(kafka.bootstrap, group, src, 3)).values()) > 0, 30,
                   what="offsets committed by a transaction")
        d.kill()  # idle by now: no transaction is open
    before = asyncio.run(read_all(kafka.bootstrap, out, idle_s=0.5, isolation_level="read_committed"))
    asyncio.run(produce(kafka.bootstrap, src, second))
    closer = [{"user_id": "closer", "ts": events[-1]["ts"] + 600_000, "amount": 0.0}]
    for p in range(3):
        asyncio.run(produce(kafka.bootstrap, src, closer, partition=p))
    truth = tumbling_truth(events, 300, "user_id")
    with Daemon(cfg, tmp_path, env=SHIM) as d:
        wait_until(lambda: {(v["window_start"], v["user_id"]) for _, v in
                            asyncio.run(read_all(kafka.bootstrap, out, idle_s=0.5))} >= set(truth),
                   90, interval=1, what="every window")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr
    messages = [m for m in asyncio.run(read_all(kafka.bootstrap, out, isolation_level="read_committed"))
                if m[1]["user_id"] != "closer"]
    check_against_truth(messages, truth)
    keys = [k for k, _ in messages]
    assert len(keys) == len(set(keys)), "a window written before the kill was sent again"
    assert len(before) < len(messages)


def test_without_transactions_the_broker_refuses_and_the_daemon_names_the_sink(tmp_path, kafka):
    src, out, _ = new_topics(kafka.bootstrap, 1)
    cfg = kafka_config(tmp_path, kafka.bootstrap, src, out, sink=EOS)
    res = run_cli("run", "-c", str(cfg))  # no shim: aiokafka's InitProducerId v0, which Tansu refuses
    assert res.returncode == 1
    assert "component results failed to start: RuntimeError: UnknownError" in res.stderr
    assert "the broker refused a transactional producer id" in res.stderr
    assert "Traceback" not in res.stderr


ROWS_KAFKA_CANNOT_CARRY = {
    "int_beyond_64_bits": ("one_huge_int", 18, "row cannot be encoded as JSON: Integer exceeds 64-bit range"),
    "larger_than_max_request_size": ("one_oversized_row", 17, "larger than the sink's max_request_size (1048576)"),
}


@pytest.mark.parametrize("row", ROWS_KAFKA_CANNOT_CARRY)
@pytest.mark.parametrize("sink", [{}, EOS], ids=["acks", "exactly_once"])
def test_a_row_kafka_cannot_carry_is_rejected_and_the_rest_and_the_offsets_go_through(tmp_path, kafka, sink, row):
    """Rejected to the dead letters, never sent and refused for good: the sink does not halt."""
    rowfn, seed, why = ROWS_KAFKA_CANNOT_CARRY[row]
    src, out, group = new_topics(kafka.bootstrap, 2, 2)
    events = make_events(1500, span_s=900, seed=seed, users=10)
    asyncio.run(produce(kafka.bootstrap, src, events))
    cfg = kafka_config(tmp_path, kafka.bootstrap, src, out, group=group, sink=sink)
    text = cfg.read_text().replace('flow = "events >> per_user >> results"', 'flow = "events >> per_user >> odd >> results"')
    cfg.write_text(text + f'\n[stages.odd]\ntype = "python"\ncall = "tests.faults.rowfns:{rowfn}"\n')
    res = run_cli("run", "-c", str(cfg), env=SHIM)
    assert res.returncode == 0, res.stderr[-3000:]
    truth = tumbling_truth(events, 300, "user_id")
    good = {k for k in truth if k[1] != "u7"}  # every row but u7's
    got = {(v["window_start"], v["user_id"]) for _, v in asyncio.run(read_all(kafka.bootstrap, out, expect=len(good)))}
    assert got == good
    dead = [d for d in read_jsonl(tmp_path / "dead.jsonl") if d["stage"] == "results"]
    assert len(dead) == len({k[0] for k in truth if k[1] == "u7"})
    assert {d["reason"] for d in dead} == {"sink_rejected"}
    assert all(why in d["detail"] for d in dead)
    offsets = asyncio.run(committed(kafka.bootstrap, group, src, 2))
    assert sum(offsets.values()) == len(events)  # the rejected rows hold nothing back
