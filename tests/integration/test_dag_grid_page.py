"""The DAGs' grid on the status page, in Debian's Chromium via Playwright, as an Airflow user reads
it: a row per task, a column per run, Airflow's state colours, the tries; a click shows the task
instance's log lines and XCom, and "Clear" re-runs it and its downstream. With RTSTREAM_DAG_GRID_SCREENSHOT=PATH set, saves the picture there (docs/dag-grid.png)."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.e2e.dag_grid_support import RUNS, TOKEN, GridSetup

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_the_dag_grid_in_a_browser(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    setup = GridSetup(tmp_path)
    with setup.daemon() as d:
        setup.wait_settled()
        first = setup.runs("grid_demo")[-1]["run_id"]
        before = setup.ran()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                              "--disable-component-update", "--disable-sync", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(setup.base + f"/?token={TOKEN}")
            page.wait_for_selector("body[data-dags-loaded='1']", timeout=15_000)
            page.wait_for_selector("body[data-loaded='1']", timeout=15_000)
            # a daemon that runs only DAGs: the pipeline's sections are hidden, the DAGs' grid shown
            assert page.locator("section.pipe:visible").count() == 0
            assert page.inner_text("#name") == "rtstream · DAGs"
            demo, flaky = "table.dgrid[data-dag='grid_demo']", "table.dgrid[data-dag='flaky']"
            assert page.locator(f"{demo} th.task").all_inner_texts() == ["extract", "transform", "report", "load"]
            assert page.locator(f"{demo} td.bar").count() == RUNS  # a column per run
            assert page.locator(f"{demo} td.ti.st-success").count() == 4 * RUNS
            assert page.locator(f"{flaky} td.ti.st-failed[data-task='check'][data-tries='2']").count() == RUNS
            assert page.locator(f"{flaky} td.ti.st-upstream_failed[data-task='publish']").count() == RUNS
            # Airflow's colours: success green, failed red, upstream_failed orange
            colour = "(e) => getComputedStyle(e).backgroundColor"
            assert page.locator(f"{demo} td.ti").first.evaluate(colour) == "rgb(0, 128, 0)"
            assert page.locator(f"{flaky} td.ti[data-task='check']").first.evaluate(colour) == "rgb(255, 0, 0)"
            assert page.locator(f"{flaky} td.ti[data-task='publish']").first.evaluate(colour) == "rgb(255, 165, 0)"

            page.click(f"{demo} td.ti[data-task='transform'][data-run='{first}']")
            page.wait_for_selector("#ti-grid_demo .ti-log", timeout=10_000)
            assert "transforming 21 rows" in page.inner_text("#ti-grid_demo .ti-log")
            assert "return_value: 42" in page.inner_text("#ti-grid_demo .ti-xcom")
            page.click("#clear-btn")
            cell = f"{demo} td.ti[data-task='load'][data-run='{first}'][data-tries='2'].st-success"
            page.wait_for_selector(cell, timeout=30_000)  # the grid polls: the re-run shows as a second try
            page.wait_for_selector("#ti-grid_demo .ti-log[data-try='2']", timeout=10_000)
            assert page.inner_text("#clear-note") == "cleared transform, load"
            # the flaky DAG's check, for the picture: its two tries and the error of the last
            page.click(f"{flaky} td.ti[data-task='check'][data-run='{first}']")
            page.wait_for_selector("#ti-flaky .ti-log[data-try='2']", timeout=10_000)
            assert "ValueError: the source is broken" in page.inner_text("#ti-flaky")
            shot = os.environ.get("RTSTREAM_DAG_GRID_SCREENSHOT")  # e.g. docs/dag-grid.png, when refreshing it
            page.screenshot(path=shot or str(tmp_path / "dag-grid.png"), full_page=True)
            browser.close()
        after = setup.ran()
        changed = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
        assert changed == {("grid_demo", "transform", first): 1, ("grid_demo", "load", first): 1}
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr
