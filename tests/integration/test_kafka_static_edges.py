"""Static Kafka readers beside other readers of their group, and a static start against a broker that
is not up: the real daemon on Tansu."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

from rtstream.testing.peers.ports import free_port
from rtstream.testing.peers.tansu import TansuBroker, create_topic
from tests.data import BASE_MS, make_events
from tests.integration.test_kafka_static import assert_exact, got_rows, static_config
from tests.kafka_helpers import new_topics, produce
from tests.reference import tumbling_truth
from tests.support import Daemon, wait_until

CLOSER = {"user_id": "closer", "ts": BASE_MS + 7_200_000, "amount": 0.0}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR " in line or "Traceback" in line]


def both(*dirs: Path) -> dict:
    out: dict = {}
    for d in dirs:
        out.update(got_rows(d))
    return {k: v for k, v in out.items() if k[1] != "closer"}


def test_a_second_static_reader_takes_over_and_the_first_stops_with_one_line(tmp_path, kafka):
    topic, _, group = new_topics(kafka.bootstrap, 4)
    events = make_events(6000, span_s=1800, seed=91)
    asyncio.run(produce(kafka.bootstrap, topic, events[:3000]))
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir(), b_dir.mkdir()
    with Daemon(static_config(a_dir, kafka.bootstrap, topic, group, finite=False), a_dir) as a:
        wait_until(lambda: "static assignment" in a.stderr, 60, what="the first reader's share")
        with Daemon(static_config(b_dir, kafka.bootstrap, topic, group, finite=False), b_dir) as b:
            wait_until(lambda: "static assignment" in b.stderr, 60, what="the second reader's share")
            assert a.wait(20) == 1, a.stderr[-3000:]  # fenced within seconds
            errors = error_lines(a.stderr)
            assert len(errors) == 1, errors
            assert f"another static reader of group {group!r} started later" in errors[0]
            assert "it takes over and this one stops" in errors[0]
            wait_until(lambda: "started before this one" in b.stderr, 30, what="the second reader's note")
            asyncio.run(produce(kafka.bootstrap, topic, events[3000:] + [CLOSER] * 8))
            truth = tumbling_truth(events, 300, "user_id")
            wait_until(lambda: set(truth) <= set(both(a_dir, b_dir)), 90, what="every window")
            assert b.proc.poll() is None and not error_lines(b.stderr), b.stderr[-3000:]
            b.signal(signal.SIGTERM)
            assert b.wait(30) == 0, b.stderr[-3000:]
    assert_exact(both(a_dir, b_dir), truth)


def test_a_group_mode_daemon_joining_stops_the_static_reader(tmp_path, kafka):
    topic, _, group = new_topics(kafka.bootstrap, 4)
    events = make_events(6000, span_s=1800, seed=92)
    asyncio.run(produce(kafka.bootstrap, topic, events[:3000]))
    s_dir, g_dir = tmp_path / "s", tmp_path / "g"
    s_dir.mkdir(), g_dir.mkdir()
    with Daemon(static_config(s_dir, kafka.bootstrap, topic, group, finite=False), s_dir) as s:
        wait_until(lambda: "static assignment" in s.stderr, 60, what="the static reader's share")
        grp = static_config(g_dir, kafka.bootstrap, topic, group, finite=False, assignment="group", start="committed")
        with Daemon(grp, g_dir) as g:
            assert s.wait(30) == 1, s.stderr[-3000:]
            # aiokafka logs each commit the group refused until the reader stops (a few on a busy machine)
            client = [e for e in error_lines(s.stderr) if " aiokafka." in e]
            assert len(client) <= 10 and all("OffsetCommit failed" in e for e in client), client
            errors = [e for e in error_lines(s.stderr) if " aiokafka." not in e]
            assert len(errors) == 1, errors
            assert f"consumer group {group!r}" in errors[0] and "a group-mode reader joined it" in errors[0]
            asyncio.run(produce(kafka.bootstrap, topic, events[3000:] + [CLOSER] * 8))
            truth = tumbling_truth(events, 300, "user_id")
            wait_until(lambda: set(truth) <= set(both(s_dir, g_dir)), 90, what="every window")
            assert g.proc.poll() is None and not error_lines(g.stderr), g.stderr[-3000:]
            g.signal(signal.SIGTERM)
            assert g.wait(30) == 0, g.stderr[-3000:]
    assert_exact(both(s_dir, g_dir), truth)


def test_a_static_start_retries_while_the_broker_is_down(tmp_path):
    broker = TansuBroker(port=free_port())  # not started yet: nothing listens there
    bootstrap = f"127.0.0.1:{broker.port}"
    topic, group = "in-down", "grp-down"
    events = make_events(3000, span_s=1200, seed=93)
    with Daemon(static_config(tmp_path, bootstrap, topic, group), tmp_path) as d:
        wait_until(lambda: re.search(r"listing the partitions of in-down failed .*; trying again in", d.stderr), 30,
                   what="a retried listing")
        assert d.proc.poll() is None, d.stderr[-3000:]
        with broker:
            asyncio.run(create_topic(bootstrap, topic, 2))
            asyncio.run(produce(bootstrap, topic, events))
            assert d.wait(120) == 0, d.stderr[-3000:]
    assert_exact(got_rows(tmp_path), tumbling_truth(events, 300, "user_id"))
    # aiokafka logs each refused connection itself; rtstream adds one warning per attempt, nothing more
    assert not [e for e in error_lines(d.stderr) if " aiokafka: " not in e], d.stderr[-3000:]


def test_a_stop_while_the_broker_is_down_exits_0(tmp_path):
    with Daemon(static_config(tmp_path, f"127.0.0.1:{free_port()}", "t", "g"), tmp_path) as d:
        wait_until(lambda: "listing the partitions of t failed" in d.stderr, 30, what="a retried listing")
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-3000:]
    assert "stopped before the pipeline started" in d.stderr
