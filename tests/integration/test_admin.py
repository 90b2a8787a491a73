"""The admin server over HTTP and the status page in a real browser (Debian's Chromium via Playwright)."""

from __future__ import annotations

import shutil
import signal
import threading
import urllib.error
import urllib.request
from pathlib import Path
from unittest.mock import ANY

import orjson
import pytest
from aiohttp import web

from rtstream.testing.peers.ports import free_port
from tests.data import BASE_MS, make_events, write_lines
from tests.http_peers import ThreadedServer
from tests.support import Daemon, run_cli, wait_until, write_config


def get(url, token=None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers


class Switchable:
    """A webhook that accepts until told to fail, then answers 500."""

    def __init__(self):
        self.failing = threading.Event()

    def app(self):
        app = web.Application()

        async def hook(request):
            await request.read()
            if self.failing.is_set():
                return web.Response(status=500, text="receiver is down for maintenance")
            return web.Response(status=204)

        app.router.add_post("/hook", hook)
        return app


@pytest.fixture
def running(tmp_path):
    port = free_port()
    receiver = Switchable()
    src = tmp_path / "in.jsonl"
    write_lines(src, make_events(900, span_s=180, seed=61))  # three one-minute windows
    write_lines(src, [{"user_id": "closer", "ts": BASE_MS + 185_000, "amount": 0}], mode="ab")
    with ThreadedServer(receiver.app) as server:
        doc = {
            "pipeline": {"name": "admin-demo", "flow": "events >> per_user >> [files, hook]"},
            "window": {"size": "1m", "lateness": "1s", "idle_timeout": "1h"},
            "sources": {"events": {"type": "file", "path": str(src), "follow": True, "poll_interval": "50ms"}},
            "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"events": "count()"}}},
            "sinks": {"files": {"type": "file", "path": str(tmp_path / "out")},
                      "hook": {"type": "http", "url": f"{server.url}/hook", "max_retries": 0}},
            "defaults": {"retry_delay": "50ms", "max_retry_delay": "200ms", "retries": 1},
            "admin": {"listen": f"127.0.0.1:{port}", "token": "t0ken"},
            "daemon": {"state_dir": str(tmp_path / "state"), "log_format": "json", "shutdown_grace": "2s"},
        }
        with Daemon(write_config(tmp_path / "admin.toml", doc), tmp_path) as d:
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: _ok(base + "/healthz"), 30, what="the admin server")
            yield d, base, receiver, src
            d.signal(signal.SIGTERM)
            assert d.wait(30) == 0


def _ok(url):
    try:
        return get(url)[0] == 200
    except OSError:
        return False


def runs(base):
    return orjson.loads(get(base + "/api/runs", "t0ken")[1])


def three_done(base):
    """Three windows in the history, each past its sinks: a window is listed once its first component ran."""
    windows = runs(base)["windows"]
    return len(windows) == 3 and all(c["state"] != "running" for w in windows for c in w["components"].values())


def test_endpoints(running):
    d, base, receiver, src = running
    assert orjson.loads(get(base + "/healthz")[1]) == {"status": "ok"}
    wait_until(lambda: three_done(base), 30, what="three windows in the history")
    assert get(base + "/readyz")[0] == 200
    assert get(base + "/api/runs")[0] == 401 and get(base + "/metrics")[0] == 401  # the token guards the data
    doc = runs(base)
    assert doc["components"] == ["per_user", "files", "hook"]
    assert all(c["state"] == "success" for w in doc["windows"] for c in w["components"].values())
    metrics = get(base + "/metrics", "t0ken")[1].decode()
    assert 'rtstream_records_in_total{source="events"} 901.0' in metrics
    assert "rtstream_window_flush_seconds_bucket" in metrics and 'rtstream_sink_halted{sink="hook"} 0.0' in metrics

    cli = run_cli("status", "-c", str(d.config))
    assert cli.returncode == 0 and cli.stdout.startswith("admin-demo: ready") and "windows 3" in cli.stdout
    grid = run_cli("runs", "-c", str(d.config))
    assert grid.returncode == 0 and grid.stdout.splitlines()[1].split() == ["2026-01-01T00:02:00Z", "ok", "ok", "ok"]

    receiver.failing.set()
    write_lines(src, [{"user_id": "late-comer", "ts": BASE_MS + 250_000, "amount": 1}], mode="ab")
    status, body, _ = wait_until(lambda: (r := get(base + "/readyz", "t0ken"))[0] == 503 and r, 30,
                                 what="readyz to fail")
    problems = orjson.loads(body)["problems"]
    assert list(problems) == ["hook"] and "HTTP 500" in problems["hook"]
    assert get(base + "/readyz") == (503, b'{"ready":false}', ANY)  # a probe without the token: the status alone
    assert 'rtstream_sink_halted{sink="hook"} 1.0' in get(base + "/metrics", "t0ken")[1].decode()
    receiver.failing.clear()
    wait_until(lambda: get(base + "/readyz")[0] == 200, 30, what="the sink to recover")
    status = orjson.loads(get(base + "/api/status", "t0ken")[1])
    assert status["windows_flushed"] == 4 and status["ready"] is True


def test_history_survives_a_restart(running, tmp_path):
    d, base, receiver, src = running
    wait_until(lambda: three_done(base), 30, what="three windows")
    from rtstream.cli.runs import grid_text
    from rtstream.runtime.run_history import RunHistory

    # read the same store the daemon writes, as `rtstream runs` does
    windows = RunHistory(tmp_path / "state" / "runs.db").windows()
    assert [w["window_start"] for w in windows] == ["2026-01-01T00:02:00Z", "2026-01-01T00:01:00Z",
                                                    "2026-01-01T00:00:00Z"]
    text = grid_text(windows, ["per_user", "files", "hook"])
    assert text.splitlines()[1].split() == ["2026-01-01T00:02:00Z", "ok", "ok", "ok"]


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_status_page_in_a_browser(running, tmp_path):
    from playwright.sync_api import sync_playwright

    d, base, receiver, src = running
    wait_until(lambda: three_done(base), 30, what="three windows")
    receiver.failing.set()
    write_lines(src, [{"user_id": "late-comer", "ts": BASE_MS + 250_000, "amount": 1}], mode="ab")
    wait_until(lambda: any(w["components"].get("hook", {}).get("state") == "failed" for w in runs(base)["windows"]),
               30, what="the hook to fail for good")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                          "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(base + "/?token=t0ken")
        page.wait_for_selector("body[data-loaded='1']", timeout=15_000)
        page.wait_for_selector("td.cell.failed", timeout=15_000)
        assert page.inner_text("#name") == "admin-demo"
        # the grid has the windows that ran: four columns (and the open one), one row per source, stage and sink
        assert page.locator("table.grid th.win:not(.open)").count() == 4
        assert page.locator("td.cell.success[data-component='events']").count() == 4  # the source delivered each
        # three whole windows, then stage and file sink
        assert page.locator("td.cell.success:not([data-component='events'])").count() == 3 * 3 + 2
        failed = page.locator("td.cell.failed[data-component='hook']")
        assert failed.count() == 1
        assert "receiver is down for maintenance" in failed.get_attribute("title")
        assert failed.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(214, 69, 69)"  # red
        assert page.locator(".node.failed[data-component='hook']").count() == 1
        assert "receiver is down" in page.inner_text("#errors")
        assert page.inner_text("#ready") == "not ready"
        page.screenshot(path=str(tmp_path / "status.png"), full_page=True)
        assert (tmp_path / "status.png").stat().st_size > 10_000
        browser.close()
