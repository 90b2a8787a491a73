"""The status page and /api/status of a flow of several branches list every branch's open windows
(not the first branch's only), each naming its branch; the grid shows them in Debian's Chromium via
Playwright, a component scheduled only on its own branch's open window."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from rtstream.testing.peers.ports import free_port
from tests.data import BASE_MS, make_events, write_lines
from tests.integration.test_status_page import CHROMIUM, TOKEN, _up, call
from tests.support import Daemon, wait_until, write_config


@pytest.fixture
def daemon(tmp_path):
    port = free_port()
    src = tmp_path / "in.jsonl"
    write_lines(src, make_events(300, span_s=180, seed=7))  # three one-minute windows, one five-minute window
    write_lines(src, [{"user_id": "closer", "ts": BASE_MS + 185_000, "amount": 0}], mode="ab")  # opens a fourth
    doc = {
        "pipeline": {"name": "branch-grid", "flow": "events >> per_min >> mins\nevents >> per_5min >> fives"},
        "window": {"size": "1m", "lateness": "1s", "idle_timeout": "1h"},
        "sources": {"events": {"type": "file", "path": "in.jsonl", "follow": True, "poll_interval": "50ms"}},
        "stages": {"per_min": {"type": "aggregate", "key": "user_id", "aggregates": {"events": "count()"}},
                   "per_5min": {"type": "aggregate", "key": "user_id", "aggregates": {"events": "count()"},
                                "window": {"size": "5m", "lateness": "1s", "idle_timeout": "1h"}}},
        "sinks": {"mins": {"type": "file", "path": "mins"}, "fives": {"type": "file", "path": "fives"}},
        "state": {"checkpoint_interval": "1s"},
        "admin": {"listen": f"127.0.0.1:{port}", "token": TOKEN},
        "daemon": {"state_dir": "state", "shutdown_grace": "2s"},
    }
    with Daemon(write_config(tmp_path / "grid.toml", doc), tmp_path) as d:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _up(base), 30, what="the admin server")
        wait_until(lambda: len(call(base + "/api/runs")[1].get("windows", [])) == 3, 30, what="three windows")
        yield d, base
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr


WANT = [{"window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-01T00:05:00Z", "records": 301,
         "branch": "per_5min", "components": ["per_5min", "fives"]},
        {"window_start": "2026-01-01T00:03:00Z", "window_end": "2026-01-01T00:04:00Z", "records": 1,
         "branch": "per_min", "components": ["per_min", "mins"]}]


def test_api_status_lists_every_branchs_open_windows(daemon):
    _, base = daemon
    status = wait_until(lambda: (s := call(base + "/api/status")[1])["open"] == WANT and s, 10,
                        what="both branches' open windows")
    assert status["open_windows"] >= 2


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_the_grid_shows_each_branchs_open_window(daemon, tmp_path):
    from playwright.sync_api import sync_playwright

    _, base = daemon
    wait_until(lambda: call(base + "/api/status")[1]["open"] == WANT, 10, what="both branches' open windows")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                          "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(base + f"/?token={TOKEN}")
        page.wait_for_selector("body[data-loaded='1']", timeout=15_000)
        # three closed one-minute windows, then an open column per branch: the 5m window starting with
        # the first closed minute is not hidden behind it
        assert page.locator("table.grid th.win").count() == 5
        assert page.locator("table.grid th.win.open").count() == 2
        assert "per_5min" in page.inner_text("table.grid th.win.open[data-branch='per_5min']")
        assert page.locator("td.cell.open[data-component='events']").count() == 2
        for sink, branch, other in (("fives", "per_5min", "per_min"), ("mins", "per_min", "per_5min")):
            assert page.locator(f"td.cell.scheduled[data-component='{sink}'][data-branch='{branch}']").count() == 1
            off = page.locator(f"td.cell[data-open='1'][data-component='{sink}'][data-branch='{other}']")
            assert off.count() == 1 and "scheduled" not in (off.get_attribute("class") or "")
            assert f"not on branch {other}" in (off.get_attribute("title") or "")
        page.screenshot(path=str(tmp_path / "branch-grid.png"), full_page=True)
        shot = Path(os.environ.get("RTSTREAM_SCREENSHOT", ""))
        if shot.name:
            shutil.copy(tmp_path / "branch-grid.png", shot)
        browser.close()
