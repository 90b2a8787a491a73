"""The status page as an Airflow user reads the grid: a row per task, the open window, one window's
story on a click, and a re-run of it, in Debian's Chromium via Playwright; and the API behind it."""

from __future__ import annotations

import os
import shutil
import signal
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest

from rtstream.testing.peers.ports import free_port
from tests.data import BASE_MS, make_events, write_lines
from tests.support import ROOT, Daemon, wait_until, write_config

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "t0ken"


def call(url, token=TOKEN, body=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data, headers["Content-Type"] = orjson.dumps(body), "application/json"
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, orjson.loads(err.read())


def _up(base):
    try:
        return call(base + "/healthz")[0] == 200
    except OSError:
        return False


@pytest.fixture
def daemon(tmp_path):
    port = free_port()
    src = tmp_path / "in.jsonl"
    write_lines(src, make_events(300, span_s=180, seed=7))  # three one-minute windows
    write_lines(src, [{"user_id": "closer", "ts": BASE_MS + 185_000, "amount": 0}], mode="ab")  # opens a fourth
    doc = {
        "pipeline": {"name": "grid-demo", "flow": "events >> per_user >> files"},
        "window": {"size": "1m", "lateness": "1s", "idle_timeout": "1h"},
        "sources": {"events": {"type": "file", "path": "in.jsonl", "follow": True, "poll_interval": "50ms"}},
        "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"events": "count()"}}},
        "sinks": {"files": {"type": "file", "path": "out"}},
        "admin": {"listen": f"127.0.0.1:{port}", "token": TOKEN},
        "daemon": {"state_dir": "state", "shutdown_grace": "2s"},
    }
    with Daemon(write_config(tmp_path / "grid.toml", doc), tmp_path) as d:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _up(base), 30, what="the admin server")
        wait_until(lambda: len(call(base + "/api/runs")[1].get("windows", [])) == 3, 30, what="three windows")
        yield d, base, src
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr


def test_window_details_open_window_rates_and_rerun_over_http(daemon, tmp_path):
    d, base, src = daemon
    assert (tmp_path / "out").is_dir() and not (ROOT / "out").exists()  # paths beside the config
    write_lines(src, [{"user_id": "late", "ts": BASE_MS + 1_000, "amount": 1}], mode="ab")  # late for window 0
    first = "2026-01-01T00:00:00Z"
    detail = wait_until(lambda: (r := call(f"{base}/api/window?start={first}")[1])["dead_letters"] and r, 30,
                        what="the late record's dead letter")
    assert detail["window_end"] == "2026-01-01T00:01:00Z" and detail["open"] is False
    assert detail["components"]["per_user"]["state"] == "success" and detail["components"]["files"]["state"] == "success"
    assert [x["reason"] for x in detail["dead_letters"]] == ["late"]
    assert any("flushed" in line["message"] for line in detail["logs"])

    status = call(base + "/api/status")[1]
    assert status["open"] == [{"window_start": "2026-01-01T00:03:00Z", "window_end": "2026-01-01T00:04:00Z", "records": 1}]
    rows = sum(1 for f in (tmp_path / "out").iterdir() for _ in f.read_text().splitlines())
    wait_until(lambda: call(base + "/api/status")[1]["rates"]["out_per_s"], 10, what="a rate")
    rates = call(base + "/api/status")[1]["rates"]
    assert rates["out_per_s"] * rates["span_s"] == pytest.approx(rows)  # the burst counts: not "0.0 rows out/s"
    assert status["can_rerun"] is True

    assert call(f"{base}/api/window?start=yesterday")[0] == 400
    assert call(f"{base}/api/window?start={first}", token=None)[0] == 401
    assert call(base + "/api/rerun", token=None, body={"window_start": first})[0] == 401
    assert call(base + "/api/rerun", body={"window_start": "2026-01-01T05:00:00Z"})[0] == 404
    before = (tmp_path / "out" / "2026-01-01T00-00-00Z.jsonl").read_text()
    (tmp_path / "out" / "2026-01-01T00-00-00Z.jsonl").unlink()
    code, doc = call(base + "/api/rerun", body={"window_start": first})
    assert code == 202 and doc["rerun"]["state"] == "running"
    done = wait_until(lambda: (r := call(f"{base}/api/window?start={first}")[1]["rerun"])["state"] != "running" and r,
                      60, what="the re-run to end")
    assert done["state"] == "success" and done["exit_code"] == 0, done["output"]
    again = [orjson.loads(x) for x in (tmp_path / "out" / "2026-01-01T00-00-00Z.jsonl").read_text().splitlines()]
    # the window written again, rebuilt from the whole file: now with the record that came too late the first time
    assert [r for r in again if r["user_id"] != "late"] == [orjson.loads(x) for x in before.splitlines()]
    assert [r["events"] for r in again if r["user_id"] == "late"] == [1]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_the_grid_in_a_browser(daemon, tmp_path):
    from playwright.sync_api import sync_playwright

    d, base, src = daemon
    write_lines(src, [{"user_id": "late", "ts": BASE_MS + 1_000, "amount": 1}], mode="ab")
    wait_until(lambda: call(f"{base}/api/window?start=2026-01-01T00:00:00Z")[1]["dead_letters"], 30, what="dead letter")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                          "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(base + f"/?token={TOKEN}")
        page.wait_for_selector("body[data-loaded='1']", timeout=15_000)
        # a row per source, stage and sink; three closed windows and the open one as a running column
        assert page.locator("table.grid th.win").count() == 4
        assert page.locator("table.grid th.win.open").count() == 1
        assert page.locator("td.cell.success[data-component='events']").count() == 3
        assert page.locator("td.cell.open[data-component='events']").count() == 1
        assert page.locator("td.cell.scheduled[data-component='files']").count() == 1
        assert page.locator("td.cell.success").count() == 3 * 3
        # axes with units
        assert "now" in page.text_content("#tput") and "−5 min" in page.text_content("#tput")
        assert "0 /s" in page.text_content("#tput")  # the value axis names its unit at 0
        # the data is from January: the lag reads in days once the first sample is in (every 2 s)
        wait_until(lambda: page.inner_text("#klag").endswith(" d"), 15, what="the lag in days")
        assert "0 d" in page.text_content("#lag")
        page.click("td.cell[data-component='per_user'][data-window='2026-01-01T00:00:00Z']")
        page.wait_for_selector("#detail table.runs", timeout=10_000)
        assert "2026-01-01T00:00:00Z → 2026-01-01T00:01:00Z" in page.inner_text("#detail")
        assert page.locator("#detail tr[data-component='files'] td.state.success").count() == 1
        assert '"reason":"late"' in page.inner_text("#window-dead-letters")
        assert "flushed" in page.inner_text("#window-logs")
        page.screenshot(path=str(tmp_path / "grid.png"), full_page=True)
        page.click("#rerun")
        page.wait_for_selector("#rerun-state.success", timeout=60_000)  # the page polls while the panel is open
        page.screenshot(path=str(tmp_path / "grid-rerun.png"), full_page=True)
        shot = Path(os.environ.get("RTSTREAM_SCREENSHOT", ""))
        if shot.name:
            shutil.copy(tmp_path / "grid-rerun.png", shot)
        browser.close()


def test_rerun_needs_a_token_even_on_loopback(tmp_path):
    port = free_port()
    write_lines(tmp_path / "in.jsonl", make_events(50, span_s=60, seed=3))
    doc = {
        "pipeline": {"name": "no-token", "flow": "events >> files"},
        "window": {"size": "1m", "lateness": "0s", "idle_timeout": "300ms"},
        "sources": {"events": {"type": "file", "path": "in.jsonl", "follow": True, "poll_interval": "50ms"}},
        "sinks": {"files": {"type": "file", "path": "out"}},
        "admin": {"listen": f"127.0.0.1:{port}"},
        "daemon": {"state_dir": "state", "shutdown_grace": "2s"},
    }
    with Daemon(write_config(tmp_path / "nt.toml", doc), tmp_path) as d:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _up(base), 30, what="the admin server")
        wait_until(lambda: call(base + "/api/runs", token=None)[1]["windows"], 30, what="a window")
        assert call(base + "/api/status", token=None)[1]["can_rerun"] is False
        code, doc = call(base + "/api/rerun", token=None, body={"window_start": "2026-01-01T00:00:00Z"})
        assert code == 403 and "admin.token" in doc["error"]
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr
