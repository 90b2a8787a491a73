"""The status page on the default demo's shape (an endless realtime generator, running results every
few seconds), in Debian's Chromium: re-run of a window works (the generator replays a past range)
or says why in the panel; final rows and running rows are separate series; after a restart the
header's windows-flushed figure agrees with the history and a window's log lines are still there;
times carry their date and UTC. With RTSTREAM_DOCS_SCREENSHOT=1, the picture of `make run`'s config
in docs/status-page.png is taken here."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import orjson
import pytest

from rtstream.testing.peers.ports import free_port
from tests.integration.test_status_page import CHROMIUM, _up, call
from tests.support import ROOT, Daemon, wait_until, write_config

TOKEN = "t0ken"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


def _config(tmp_path: Path, port: int, token: str | None) -> Path:
    doc = {
        "pipeline": {"name": "clickstream", "flow": "clicks >> per_user >> files"},
        "window": {"size": "3s", "lateness": "500ms", "idle_timeout": "2s", "emit": "updates",
                   "update_interval": "1s"},
        "sources": {"clicks": {"type": "generator", "rate": 40, "users": 5, "seed": 42, "realtime": True}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"events": "count()"}}},
        "sinks": {"files": {"type": "file", "path": "out"}},
        "admin": {"listen": f"127.0.0.1:{port}", **({"token": token} if token else {})},
        "daemon": {"state_dir": "state", "shutdown_grace": "5s"},
    }
    return write_config(tmp_path / "demo.toml", doc)


def _browser(p):
    return p.chromium.launch(executable_path=CHROMIUM, headless=True,
                             args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                   "--disable-component-update", "--disable-sync", "--no-first-run"])


def _final_rows(path: Path) -> list[dict]:
    return sorted((r for r in map(orjson.loads, path.read_text().splitlines()) if r.get("final", True)),
                  key=lambda r: r["user_id"])


def test_rerun_of_a_generator_window_rates_header_and_logs_across_a_restart(tmp_path):
    from playwright.sync_api import sync_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = _config(tmp_path, port, TOKEN)
    with Daemon(config, tmp_path) as d:
        wait_until(lambda: _up(base), 30, what="the admin server")
        runs = wait_until(lambda: len(w := call(base + "/api/runs")[1]["windows"]) >= 2 and w, 60, what="two windows")
        first = runs[-1]["window_start"]

        def counted():  # rows_out is final rows only: the history's rows of the sink, summed
            final = sum(w["components"]["files"]["records"] or 0 for w in call(base + "/api/runs")[1]["windows"])
            st = call(base + "/api/status")[1]
            return st["rows_out"] == final and st
        status = wait_until(counted, 20, interval=0.2, what="rows_out to equal the final rows")
        assert status["rows_out"] > 0 and status["rows_running"] > 0  # the running rows: their own series
        assert all("running_per_s" in s for s in status["samples"])

        target = tmp_path / "out" / (first.replace(":", "-") + ".jsonl")
        before = _final_rows(target)
        target.unlink()
        with sync_playwright() as p:
            browser = _browser(p)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(base + f"/?token={TOKEN}")
            page.wait_for_selector("body[data-loaded='1']", timeout=15_000)
            # columns with the year, the time and the zone
            assert page.locator("table.grid th.win").first.inner_text().startswith("20")
            assert page.locator("table.grid th.win").first.inner_text().endswith("UTC")
            assert "final rows out / s" in page.inner_text("section:has(#tput)")
            page.click(f"td.cell[data-component='files'][data-window='{first}']")
            page.wait_for_selector("#detail table.runs", timeout=10_000)
            assert page.locator("#rerun-why").count() == 0
            page.click("#rerun")
            page.wait_for_selector("#rerun-state.success", timeout=60_000)
            browser.close()
        # the endless generator replayed that window: the same records, so the same rows
        assert _final_rows(target) == before
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr

    with Daemon(config, tmp_path) as d:
        wait_until(lambda: _up(base), 30, what="the admin server again")

        def agree():
            st, windows = call(base + "/api/status")[1], call(base + "/api/runs?limit=1000")[1]["windows"]
            return st["windows_flushed"] == len(windows) and st["windows_flushed"]
        wait_until(agree, 20, what="the header to agree with the history")
        logs = call(f"{base}/api/window?start={first}")[1]["logs"]
        assert any("flushed" in line["message"] for line in logs), logs  # written by the first process
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr


def test_without_a_token_the_panel_says_why_a_window_cannot_be_rerun(tmp_path):
    from playwright.sync_api import sync_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with Daemon(_config(tmp_path, port, None), tmp_path) as d:
        wait_until(lambda: _up(base), 30, what="the admin server")
        first = wait_until(lambda: (w := call(base + "/api/runs", token=None)[1]["windows"]) and w[-1], 60,
                           what="a window")["window_start"]
        with sync_playwright() as p:
            browser = _browser(p)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base + "/")
            page.wait_for_selector("body[data-loaded='1']", timeout=15_000)
            page.click(f"td.cell[data-component='files'][data-window='{first}']")
            page.wait_for_selector("#rerun-why", timeout=10_000)
            assert page.locator("#rerun").is_disabled()
            why = page.inner_text("#rerun-why")
            assert "needs an admin token" in why and "?token=" in why
            assert page.get_attribute("#rerun", "title") is None or "admin.token" not in page.get_attribute("#rerun", "title")
            browser.close()
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr


@pytest.mark.skipif(not os.environ.get("RTSTREAM_DOCS_SCREENSHOT"), reason="RTSTREAM_DOCS_SCREENSHOT=1 takes it")
def test_screenshot_of_make_runs_config_for_the_docs(tmp_path):
    """`make run`'s own config (config/rtstream.toml) copied beside its state, the page as it shows."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    (tmp_path / "config").mkdir()
    config = tmp_path / "config" / "rtstream.toml"
    shutil.copy(ROOT / "config" / "rtstream.toml", config)
    env = {"RTSTREAM_ADMIN": f"127.0.0.1:{port}", "RTSTREAM_ADMIN_TOKEN": TOKEN, "RTSTREAM_VAR": "../var"}
    with Daemon(config, tmp_path, env=env) as d:
        wait_until(lambda: _up(base), 30, what="the admin server")
        wait_until(lambda: call(base + "/api/status")[1]["rows_running"] > 0, 60, what="a running result")
        with sync_playwright() as p:
            browser = _browser(p)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base + f"/?token={TOKEN}")
            page.wait_for_selector("body[data-loaded='1']", timeout=15_000)
            wait_until(lambda: len(call(base + "/api/status")[1]["samples"]) >= 6, 30, what="a few samples")
            page.wait_for_timeout(2500)  # one more refresh of the page, so the charts hold those samples
            text = page.inner_text("body")
            for private in (str(tmp_path), str(ROOT), os.path.expanduser("~"), "/tmp/", "/work/", "/home/"):
                assert private not in text, private  # the picture carries no path of this machine
            page.screenshot(path=str(ROOT / "docs" / "status-page.png"), full_page=True)
            browser.close()
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr
