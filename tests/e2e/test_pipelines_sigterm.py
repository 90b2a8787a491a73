"""SIGTERM to a daemon of two pipelines and three DAGs, at a random moment while windows are being written:
exit 0, and each pipeline's commits exactly at its sinks' positions (nothing before a commit unwritten,
nothing written left uncommitted); a restart then completes both exactly (nothing lost). Looped."""

from __future__ import annotations

import random
import signal
import time
from datetime import datetime

import pytest

from tests.e2e.pipelines_support import TwoPipelines, check_commits_at_sink_positions
from tests.http_peers import ThreadedServer
from tests.support import LOOPS, Daemon, wait_until

pytestmark = pytest.mark.timeout(600)
GRACE_S = 10  # TwoPipelines' shutdown_grace


def _iso(results: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    return {(datetime.fromisoformat(s.replace("Z", "+00:00")).isoformat(), u): n for (s, u), n in results.items()}


@pytest.mark.parametrize("run", range(LOOPS))
def test_sigterm_stops_both_with_commits_at_the_sinks(tmp_path, kafka, run):
    # each DAG task and each request to the receiver takes a moment: a SIGTERM lands among the windows
    setup = TwoPipelines(tmp_path, kafka.bootstrap, stop_at_end=False, slow_s=0.2)
    with ThreadedServer(setup.receiver.app, port=setup.port):
        with setup.daemon() as d:
            wait_until(lambda: setup.dag_results() and setup.receiver.results(), 60, what="a window of each written")
            time.sleep(random.uniform(0, 2.0))  # the random moment of the SIGTERM; nothing to wait on
            d.signal(signal.SIGTERM)
            began = time.monotonic()
            assert d.wait(30) == 0, d.stderr
            took = time.monotonic() - began
        assert took < GRACE_S + 2, f"the stop took {took:.1f}s, the grace is {GRACE_S}s"
        clicks = check_commits_at_sink_positions(setup.clicks, set(_iso(setup.dag_results())))
        orders = check_commits_at_sink_positions(setup.orders, set(_iso(setup.receiver.results())))
        assert sum(clicks.values()) > 0 and sum(orders.values()) > 0, (clicks, orders)
        with Daemon(setup.config, tmp_path, "--set", "pipelines.clicks.sources.events.stop_at_end=true",
                    "--set", "pipelines.orders.sources.events.stop_at_end=true", env=setup.env) as d:
            wait_until(lambda: setup.row("clicks").get("state") == setup.row("orders").get("state") == "finished",
                       90, what="both pipelines finished after the restart")
            d.signal(signal.SIGTERM)
            assert d.wait(30) == 0, d.stderr
    assert _iso(setup.dag_results()) == _iso(setup.clicks.truth())
    assert setup.receiver.results() == setup.orders.truth()
    assert setup.clicks.committed() == setup.clicks.ends and setup.orders.committed() == setup.orders.ends
    print(f"\nTALLY run {run}: stop took {took:.1f}s, commits at SIGTERM clicks {sum(clicks.values())}/{sum(setup.clicks.ends.values())}, "
          f"orders {sum(orders.values())}/{sum(setup.orders.ends.values())}")
