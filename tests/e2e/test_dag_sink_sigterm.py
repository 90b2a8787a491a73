"""`rtstream run` of one pipeline whose `dag` sink runs a DAG per window, SIGTERM at a random moment while
windows' runs are going: exit 0, the windows in flight written (their runs still run during the stop) and
the source's commits exactly at what was written; a restart completes every window exactly once. Looped."""

from __future__ import annotations

import random
import signal
import time
from datetime import datetime
from typing import Any

import orjson
import pytest

from tests.e2e.pipelines_support import Topic, check_commits_at_sink_positions
from tests.integration.dag_sink_support import WindowDagSetup
from tests.support import LOOPS, Daemon, wait_until

pytestmark = pytest.mark.timeout(600)


def _written(setup: WindowDagSetup) -> set[tuple[str, str]]:
    out = set()
    for p in setup.out.glob("*.json"):
        body: dict[str, Any] = orjson.loads(p.read_bytes())
        start = datetime.fromisoformat(body["window_start"].replace("Z", "+00:00")).isoformat()
        out |= {(start, r["user_id"]) for r in body["rows"]}
    return out


@pytest.mark.parametrize("run", range(LOOPS))
def test_sigterm_lets_the_windows_in_flight_finish_their_runs(tmp_path, kafka, run):
    setup = WindowDagSetup(tmp_path, kafka.bootstrap, seed=40 + run, events=1200, slow_s=0.15)
    topic = Topic.__new__(Topic)  # the setup's topic, read as pipelines_support reads one
    topic.bootstrap, topic.partitions, topic.name, topic.group = kafka.bootstrap, 4, setup.src, setup.group
    topic.ends = setup.ends()
    with Daemon(setup.config, tmp_path, "--set", "sources.events.stop_at_end=false", env=setup.env) as d:
        wait_until(lambda: list(setup.out.glob("*.json")), 60, what="a window's run done")
        time.sleep(random.uniform(0, 1.0))  # the random moment of the SIGTERM; nothing to wait on
        d.signal(signal.SIGTERM)
        assert d.wait(40) == 0, d.stderr
    assert "the daemon stopped before it ended" not in d.stderr, d.stderr
    commits = check_commits_at_sink_positions(topic, _written(setup))
    with setup.daemon() as d:  # stop_at_end: reads what is left, then ends with the pipeline
        assert d.wait(120) == 0, d.stderr
    tally = setup.check_exactly_one_run_per_window()
    print(f"\nTALLY run {run}: committed at SIGTERM {sum(commits.values())}/{sum(topic.ends.values())}, {tally}")
