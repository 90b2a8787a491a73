"""A finite (`stop_at_end`) replica of a consumer group that owns no partition finishes once the
group's committed offsets reach the end of every partition of its topics (issue #24 case 16).

One topic with one partition, two replicas in one group: one reads the partition, the other is
given nothing. Before, the one given nothing could only finish by being given the partition after
the other left; beside a member that stays (a live replica of the group) it polled for ever.
"""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.data import make_events
from tests.integration.test_kafka import check_against_truth, kafka_config
from tests.kafka_helpers import new_topics, produce, read_all
from tests.reference import tumbling_truth
from tests.support import Daemon, wait_until

IDLE_DONE = ("owns no partition and the group has committed the end of every partition of its topics "
             "(1, read from the broker): nothing left to read")


def _replica(tmp_path, name, bootstrap, src, out, group, **extra):
    workdir = tmp_path / name
    workdir.mkdir()
    return kafka_config(workdir, bootstrap, src, out, group=group, name=name, max_batch=100, **extra), workdir


def _stop(*daemons):
    for d in daemons:
        if d is not None and d.proc.poll() is None:
            d.signal(signal.SIGTERM)
            d.wait(30)
        if d is not None:
            d.__exit__()


def test_an_idle_finite_replica_finishes_beside_a_live_owner_that_committed_the_end(tmp_path, kafka):
    src, out, group = new_topics(kafka.bootstrap, 1, 1)
    events = make_events(6000, span_s=1800, seed=31)
    asyncio.run(produce(kafka.bootstrap, src, events))
    # the range assignor gives the one partition to the first member id: client "rtstream-a-..."
    cfg_a, dir_a = _replica(tmp_path, "a", kafka.bootstrap, src, out, group, stop_at_end=False)
    cfg_b, dir_b = _replica(tmp_path, "b", kafka.bootstrap, src, out, group)
    a = Daemon(cfg_a, dir_a)
    b = None
    try:
        wait_until(lambda: "assigned [" in a.stderr, 60, what="replica a to own the partition")
        b = Daemon(cfg_b, dir_b)
        # a reads everything, closes the last window by idle_timeout and commits the end; it stays
        assert b.wait(60) == 0, b.stderr[-3000:]
        assert a.proc.poll() is None, a.stderr[-3000:]
        a.signal(signal.SIGTERM)
        assert a.wait(30) == 0, a.stderr[-3000:]
    finally:
        _stop(a, b)
    assert IDLE_DONE in b.stderr, b.stderr[-3000:]
    assert "assigned [" not in b.stderr  # it finished owning nothing, not by being given the partition
    assert "all sources finished: 0 records read" in b.stderr
    truth = tumbling_truth(events, 300, "user_id")
    check_against_truth(asyncio.run(read_all(kafka.bootstrap, out, expect=len(truth))), truth)


@pytest.mark.parametrize("join", ["while a reads", "at once"])
def test_two_finite_replicas_on_one_partition_both_finish(tmp_path, kafka, join):
    """Whichever way the idle one ends (the group's commits at the end, or given the partition
    after the other left and reading it to the end), both exit 0 and the result is whole."""
    src, out, group = new_topics(kafka.bootstrap, 1, 1)
    events = make_events(30000, span_s=1800, seed=32)
    asyncio.run(produce(kafka.bootstrap, src, events))
    cfg_a, dir_a = _replica(tmp_path, "a", kafka.bootstrap, src, out, group)
    cfg_b, dir_b = _replica(tmp_path, "b", kafka.bootstrap, src, out, group)
    a = Daemon(cfg_a, dir_a)
    b = None
    try:
        if join == "while a reads":
            wait_until(lambda: "assigned [" in a.stderr, 60, what="replica a to own the partition")
        b = Daemon(cfg_b, dir_b)
        assert a.wait(90) == 0, a.stderr[-3000:]
        assert b.wait(60) == 0, b.stderr[-3000:]
    finally:
        _stop(a, b)
    truth = tumbling_truth(events, 300, "user_id")
    check_against_truth(asyncio.run(read_all(kafka.bootstrap, out, expect=len(truth))), truth)
