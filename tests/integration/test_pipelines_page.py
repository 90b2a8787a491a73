"""The status page of a daemon of several pipelines, in Debian's Chromium via Playwright: a row per
pipeline (state, windows, last error) above the DAGs' grid, whose window runs name their window."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.pipelines_support import TwoPipelines
from tests.support import wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.timeout(180)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_the_pipelines_on_the_page(tmp_path: Path, kafka) -> None:
    from playwright.sync_api import sync_playwright

    setup = TwoPipelines(tmp_path, kafka.bootstrap)
    with setup.daemon():
        wait_until(lambda: setup.row("clicks").get("state") == "finished" and setup.row("orders").get("state")
                   == "halted", 90, what="clicks finished, orders halted")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                              "--disable-component-update", "--disable-sync", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{setup.admin}/")
            page.wait_for_selector("tr[data-pipeline='orders']", timeout=15_000)
            page.wait_for_selector("body[data-dags-loaded='1']", timeout=15_000)
            page.wait_for_function("document.getElementById('name').textContent === 'rtstream · clicks, orders'",
                                   timeout=15_000)
            assert page.inner_text("#ready") == "not ready"
            clicks = page.locator("tr[data-pipeline='clicks'] td").all_inner_texts()
            assert clicks[:4] == ["clicks", "finished", "5", "0"], clicks
            orders = page.locator("tr[data-pipeline='orders'] td").all_inner_texts()
            assert orders[1] == "halted" and "hook: halted, retrying:" in orders[5], orders
            page.wait_for_function("document.getElementById('errors').textContent.includes('[orders] [hook]')",
                                   timeout=15_000)
            bar = page.locator("table.dgrid[data-dag='per_window'] td.bar").first
            assert "started by the window 2026-01-01T00:00:00Z → 2026-01-01T00:01:00Z of pipeline clicks" in \
                bar.get_attribute("title"), bar.get_attribute("title")
            browser.close()
