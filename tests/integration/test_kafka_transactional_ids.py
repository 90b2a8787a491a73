"""exactly_once beside itself: workers, a backfill next to the daemon. Each producer needs a
transactional id of its own (two producers with one id fence each other, transaction after
transaction), yet the same worker restarted must keep its id to fence its previous incarnation.
Through the real daemon on Tansu (with the InitProducerId shim, see test_kafka_exactly_once)."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from types import SimpleNamespace

from rtstream.model.worker import WorkerShare
from tests.data import make_events
from tests.integration.test_kafka import check_against_truth, committed, kafka_config
from tests.integration.test_kafka_exactly_once import EOS, SHIM
from tests.kafka_helpers import new_topics, produce, read_all
from tests.reference import tumbling_truth
from tests.support import Daemon, run_cli, wait_until

FENCED = re.compile(r"fenced|Fenced|InvalidProducerEpoch|ProducerFenced|Traceback|failed", re.I)


def test_transactional_ids_are_per_worker_and_per_run_kind_and_stable():
    from rtstream.sinks.kafka.sink import transactional_id

    def ctx(index: int = 0, count: int = 1, tag: str = "") -> SimpleNamespace:
        return SimpleNamespace(worker=WorkerShare(index=index, count=count), run_tag=tag)

    assert transactional_id("rtstream-p-out-h", ctx()) == "rtstream-p-out-h"  # a single daemon keeps its id
    ids = {transactional_id("rtstream-p-out-h", ctx(i, 3)) for i in range(3)}
    assert ids == {"rtstream-p-out-h-w0", "rtstream-p-out-h-w1", "rtstream-p-out-h-w2"}
    assert transactional_id("rtstream-p-out-h", ctx(1, 3)) == transactional_id("rtstream-p-out-h", ctx(1, 3))
    assert transactional_id("x", ctx(tag="backfill-1-2")) == "x-backfill-1-2"
    assert transactional_id("x", ctx(1, 2, "test-ab")) == "x-w1-test-ab"


def test_two_exactly_once_workers_do_not_fence_each_other(tmp_path, kafka):
    src, out, group = new_topics(kafka.bootstrap, 4, 2)
    events = make_events(8000, span_s=1800, seed=71)
    asyncio.run(produce(kafka.bootstrap, src, events))
    cfg = kafka_config(tmp_path, kafka.bootstrap, src, out, group=group, sink=EOS)
    began = time.monotonic()
    res = run_cli("run", "-c", str(cfg), "--set", "daemon.workers=2", env=SHIM, timeout=300)
    took = time.monotonic() - began
    assert res.returncode == 0, res.stderr[-3000:]
    assert not FENCED.search(res.stderr), FENCED.search(res.stderr).group(0) + res.stderr[-3000:]  # type: ignore[union-attr]
    assert took < 60, took
    ids = set(re.findall(r"results: transactional id '([^']+)'", res.stderr))
    assert len(ids) == 2 and all(i.endswith(("-w0", "-w1")) for i in ids), ids
    truth = tumbling_truth(events, 300, "user_id")
    messages = asyncio.run(read_all(kafka.bootstrap, out, expect=len(truth), isolation_level="read_committed"))
    assert len(messages) == len(truth)  # each window once: no transaction was fenced and retried
    check_against_truth(messages, truth)
    assert sum(v or 0 for v in asyncio.run(committed(kafka.bootstrap, group, src, 4)).values()) == len(events)


def test_a_backfill_beside_the_exactly_once_daemon_does_not_fence_it(tmp_path, kafka):
    src, out, group = new_topics(kafka.bootstrap, 2, 2)
    events = make_events(4000, span_s=1800, seed=72)
    first, second = events[:2000], events[2000:]
    asyncio.run(produce(kafka.bootstrap, src, first))
    cfg = kafka_config(tmp_path, kafka.bootstrap, src, out, group=group, stop_at_end=False, sink=EOS,
                       window={"idle_timeout": "1h"})  # windows close by event time only: none is late
    with Daemon(cfg, tmp_path, env=SHIM) as d:
        wait_until(lambda: sum(v or 0 for v in asyncio.run(committed(kafka.bootstrap, group, src, 2)).values()) > 0,
                   60, what="a first transaction")
        bf = run_cli("backfill", "-c", str(cfg), "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T00:10:00Z",
                     env=SHIM, timeout=120)
        assert bf.returncode == 0, bf.stderr[-3000:]
        assert re.search(r"transactional id '[^']+-backfill-\d+-\d+'", bf.stderr), bf.stderr[-3000:]
        asyncio.run(produce(kafka.bootstrap, src, second))
        closer = [{"user_id": "closer", "ts": events[-1]["ts"] + 600_000, "amount": 0.0}]
        for p in range(2):
            asyncio.run(produce(kafka.bootstrap, src, closer, partition=p))
        wait_until(lambda: sum(v or 0 for v in asyncio.run(committed(kafka.bootstrap, group, src, 2)).values())
                   >= len(events), 90, interval=0.5, what="every offset committed: " + d.stderr[-4000:])
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    # the daemon's producer kept its epoch: no transaction of it failed and was retried
    assert not FENCED.search(d.stderr), d.stderr[-3000:]
    messages = [m for m in asyncio.run(read_all(kafka.bootstrap, out, isolation_level="read_committed"))
                if m[1]["user_id"] != "closer"]
    check_against_truth(messages, tumbling_truth(events, 300, "user_id"))
