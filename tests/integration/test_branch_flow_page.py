"""The status page's FLOW box draws a flow as its edges are (a row per branch, a fan-out drawn once across
the rows it feeds, a fan-in once across the rows that meet in it; one chain as it always was), and
/api/status gives each branch's watermark where lateness differs; the real daemon, Debian's Chromium."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rtstream.testing.peers.ports import free_port
from tests.data import BASE_MS, make_events, write_lines
from tests.integration.test_status_page import CHROMIUM, TOKEN, _up, call
from tests.support import Daemon, wait_until, write_config

EVENTS = make_events(300, span_s=180, seed=7)
CLOSER = {"user_id": "closer", "ts": BASE_MS + 185_000, "amount": 0, "kind": "purchase"}
LAST_TS = max(e["ts"] for e in [*EVENTS, CLOSER])
MAP = "tests.e2e.userfns:only_purchases"

# the stranger's b7 (two branches off one source, each with its own map, aggregate and sink), with files
FAN_OUT = {
    "pipeline": {"name": "b7", "flow": "clicks >> clean >> per_min >> min_out\nclicks >> clean2 >> per_10s >> s10_out"},
    "window": {"size": "1m", "lateness": "1s", "idle_timeout": "1h"},
    "sources": {"clicks": {"type": "file", "path": "in.jsonl", "follow": True, "poll_interval": "50ms"}},
    "stages": {"clean": {"type": "map", "call": MAP}, "clean2": {"type": "map", "call": MAP},
               "per_min": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}},
               "per_10s": {"type": "aggregate", "aggregates": {"n": "count()"},
                           "window": {"size": "10s", "lateness": "5s", "idle_timeout": "1h"}}},
    "sinks": {"min_out": {"type": "file", "path": "min"}, "s10_out": {"type": "file", "path": "s10"}},
    "state": {"checkpoint_interval": "1s"},
}
# two sources meet in one aggregate, one of them through its own map first
FAN_IN = {
    "pipeline": {"name": "meet", "flow": "orders >> purchases >> per_user >> out\nclicks >> per_user"},
    "window": {"size": "1m", "lateness": "1s", "idle_timeout": "1h"},
    "sources": {"orders": {"type": "file", "path": "in.jsonl", "follow": True, "poll_interval": "50ms"},
                "clicks": {"type": "file", "path": "in2.jsonl", "follow": True, "poll_interval": "50ms"}},
    "stages": {"purchases": {"type": "map", "call": MAP},
               "per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}}},
    "sinks": {"out": {"type": "file", "path": "out"}},
    "state": {"checkpoint_interval": "1s"},
}
CHAIN = {
    "pipeline": {"name": "chain", "flow": "events >> clean >> per_user >> files"},
    "window": {"size": "1m", "lateness": "1s", "idle_timeout": "1h"},
    "sources": {"events": {"type": "file", "path": "in.jsonl", "follow": True, "poll_interval": "50ms"}},
    "stages": {"clean": {"type": "map", "call": MAP},
               "per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}}},
    "sinks": {"files": {"type": "file", "path": "out"}},
}


def _iso(ms: int) -> str:  # independent of rtstream's formatter
    text = datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return (text[:-3] if ms % 1000 else text[:-7]) + "Z"


def _short(iso: str) -> str:  # as the page writes a time: seconds only when not :00
    return (iso[:16] if iso[17:19] == "00" else iso[:19]).replace("T", " ") + " UTC"


def _start(tmp_path: Path, doc: dict) -> tuple[Daemon, str]:
    port = free_port()
    write_lines(tmp_path / "in.jsonl", [*EVENTS, CLOSER])
    write_lines(tmp_path / "in2.jsonl", [*EVENTS, CLOSER])
    doc = {**doc, "admin": {"listen": f"127.0.0.1:{port}", "token": TOKEN},
           "daemon": {"state_dir": "state", "shutdown_grace": "2s"}}
    d = Daemon(write_config(tmp_path / "flow.toml", doc), tmp_path)
    d.__enter__()
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _up(base), 30, what="the admin server")
    wait_until(lambda: len(call(base + "/api/runs")[1].get("windows", [])) >= 3, 30, what="three windows")
    return d, base


@pytest.fixture
def daemon(request, tmp_path):
    d, base = _start(tmp_path, request.param)
    try:
        yield base
    finally:
        d.signal(signal.SIGTERM)
        code = d.wait(30)
        d.__exit__(None, None, None)
    assert code == 0, d.stderr


def _page(p, base):
    browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                      "--disable-component-update", "--disable-sync", "--no-first-run"])
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(base + f"/?token={TOKEN}")
    page.wait_for_selector("body[data-loaded='1']", timeout=15_000)
    return browser, page


def _boxes(page):
    """Each node of the FLOW box: (rows it spans, its box), by name; a name drawn twice is a list of two."""
    out: dict[str, list[tuple[str, dict]]] = {}
    for node in page.locator("#flow .node").all():
        out.setdefault(node.get_attribute("data-component"), []).append((node.get_attribute("data-rows"),
                                                                          node.bounding_box()))
    return out


def _mid(box):
    return box["y"] + box["height"] / 2


@pytest.mark.parametrize("daemon", [FAN_OUT], indirect=True)
def test_api_lists_every_component_and_each_branchs_watermark(daemon):
    status = wait_until(lambda: (s := call(daemon + "/api/status")[1])["watermarks"]
                        and all(w["watermark"] == _iso(LAST_TS - 1000 * w["lateness_s"]) for w in s["watermarks"]) and s,
                        10, what="each branch's watermark")
    assert status["watermarks"] == [
        {"branch": "per_min", "watermark": _iso(LAST_TS - 1000), "lateness_s": 1.0},
        {"branch": "per_10s", "watermark": _iso(LAST_TS - 5000), "lateness_s": 5.0}]
    assert status["watermark"] == _iso(LAST_TS - 5000)  # the least: the one that holds commits back
    assert sorted(status["flow"]["edges"]) == sorted([
        ["clicks", "clean"], ["clean", "per_min"], ["per_min", "min_out"],
        ["clicks", "clean2"], ["clean2", "per_10s"], ["per_10s", "s10_out"]])
    assert {n: c["kind"] for n, c in status["components"].items()} == {
        "clicks": "source", "clean": "stage", "clean2": "stage", "per_min": "stage", "per_10s": "stage",
        "min_out": "sink", "s10_out": "sink"}
    # the grid's rows below the sources: what runs once per closed window (README says why the maps are not)
    assert call(daemon + "/api/runs")[1]["components"] == ["per_min", "per_10s", "min_out", "s10_out"]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
@pytest.mark.parametrize("daemon", [FAN_OUT], indirect=True)
def test_the_flow_box_draws_a_fan_out_as_two_rows(daemon, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser, page = _page(p, daemon)
        assert page.locator("#flow .flowgraph[data-rows='2']").count() == 1
        nodes = _boxes(page)
        spans = {n: [rows for rows, _ in v] for n, v in nodes.items()}
        assert spans == {"clicks": ["0,1"], "clean": ["0"], "per_min": ["0"], "min_out": ["0"],
                         "clean2": ["1"], "per_10s": ["1"], "s10_out": ["1"]}
        box = {n: v[0][1] for n, v in nodes.items()}
        top, bottom = ["clean", "per_min", "min_out"], ["clean2", "per_10s", "s10_out"]
        for row in (["clicks", *top], ["clicks", *bottom]):  # each branch reads left to right
            assert [box[n]["x"] for n in row] == sorted(box[n]["x"] for n in row) and len({box[n]["x"] for n in row}) == 4
        for a, b in zip(top, bottom, strict=True):  # one above the other, column by column
            assert box[a]["x"] == box[b]["x"] and _mid(box[a]) < _mid(box[b])
            assert abs(_mid(box[a]) - _mid(box["per_min"])) < 2 and abs(_mid(box[b]) - _mid(box["per_10s"])) < 2
        # the fan-out: the source once, across both rows, its two arrows one per row
        assert _mid(box["clean"]) < _mid(box["clicks"]) < _mid(box["clean2"])
        edges = sorted(a.get_attribute("data-edge") for a in page.locator("#flow .flowgraph .arrow").all())
        assert edges == sorted(["clicks>clean", "clean>per_min", "per_min>min_out",
                                "clicks>clean2", "clean2>per_10s", "per_10s>s10_out"])
        assert page.locator("#flow [data-edge='per_min>clean2']").count() == 0
        assert "clicks fans out to clean, clean2" in page.inner_text("#flow pre.graph")
        # the branches' watermarks differ by their lateness: the header names each
        meta = page.inner_text("#meta")
        want = [f"per_min {_short(_iso(LAST_TS - 1000))}", f"per_10s {_short(_iso(LAST_TS - 5000))}"]
        assert f"watermark {want[0]}, {want[1]}" in meta, meta
        page.screenshot(path=str(tmp_path / "fan-out.png"), full_page=True)
        browser.close()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
@pytest.mark.parametrize("daemon", [FAN_IN], indirect=True)
def test_the_flow_box_draws_a_fan_in_once_across_its_rows(daemon, tmp_path):
    from playwright.sync_api import sync_playwright

    status = call(daemon + "/api/status")[1]
    assert status["watermarks"] == []  # one chain after the sources meet: one watermark
    with sync_playwright() as p:
        browser, page = _page(p, daemon)
        assert page.locator("#flow .flowgraph[data-rows='2']").count() == 1
        nodes = _boxes(page)
        assert {n: [rows for rows, _ in v] for n, v in nodes.items()} == {
            "orders": ["0"], "purchases": ["0"], "per_user": ["0,1"], "out": ["0,1"], "clicks": ["1"]}
        box = {n: v[0][1] for n, v in nodes.items()}
        assert box["orders"]["x"] == box["clicks"]["x"] and _mid(box["orders"]) < _mid(box["clicks"])
        assert box["orders"]["x"] < box["purchases"]["x"] < box["per_user"]["x"] < box["out"]["x"]
        assert _mid(box["orders"]) < _mid(box["per_user"]) < _mid(box["clicks"])  # the two rows meet in it
        long = page.locator("#flow .arrow.long[data-edge='clicks>per_user']")
        assert long.count() == 1 and long.get_attribute("data-rows") == "1"
        assert long.bounding_box()["width"] > box["purchases"]["width"]  # it passes the map's column
        page.screenshot(path=str(tmp_path / "fan-in.png"), full_page=True)
        browser.close()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
@pytest.mark.parametrize("daemon", [CHAIN], indirect=True)
def test_one_chain_is_drawn_as_before(daemon):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser, page = _page(p, daemon)
        assert page.locator("#flow .flowgraph").count() == 0
        cols = page.locator("#flow > .col").all()
        assert [c.inner_text().split("\n")[0] for c in cols] == ["events", "clean", "per_user", "files"]
        assert page.locator("#flow > span.arrow").count() == 3
        ys = {round(_mid(c.bounding_box())) for c in cols}
        assert len(ys) == 1  # one straight row
        browser.close()


# two sources meet, then one aggregate fans out to 60 sinks: 120 ways from a source to a sink, more than
# the page draws (as many as `rtstream validate` does); it says so rather than leave them out unsaid
WIDE = {
    "pipeline": {"name": "wide", "flow": "orders >> purchases >> per_user\nclicks >> per_user\n"
                                         f"per_user >> [{', '.join(f'o{i}' for i in range(60))}]"},
    "window": {"size": "1m", "lateness": "1s", "idle_timeout": "1h"},
    "sources": FAN_IN["sources"], "stages": FAN_IN["stages"],
    "sinks": {f"o{i}": {"type": "file", "path": f"o{i}"} for i in range(60)},
    "state": {"checkpoint_interval": "1s"},
}


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
@pytest.mark.parametrize("daemon", [WIDE], indirect=True)
def test_a_flow_of_more_ways_than_drawn_says_so(daemon):
    from playwright.sync_api import sync_playwright

    assert len(call(daemon + "/api/status")[1]["flow"]["edges"]) == 3 + 60
    with sync_playwright() as p:
        browser, page = _page(p, daemon)
        assert page.locator("#flow .flowgraph[data-rows='100']").count() == 1
        # orders' 60 ways, then 40 of clicks'; the aggregate across all 100 rows, a sink on two rows apart
        # (o0: rows 0 and 60) drawn on each
        assert page.locator("#flow .node[data-component='per_user']").get_attribute("data-rows") == \
            ",".join(map(str, range(100)))
        assert [n.get_attribute("data-rows") for n in page.locator("#flow .node[data-component='o0']").all()] == ["0", "60"]
        assert [n.get_attribute("data-rows") for n in page.locator("#flow .node[data-component='o59']").all()] == ["59"]
        assert page.locator("#flow .node[data-component='orders']").get_attribute("data-rows") == \
            ",".join(map(str, range(60)))
        assert page.locator("#flow .node[data-component='clicks']").get_attribute("data-rows") == \
            ",".join(map(str, range(60, 100)))
        assert "the first 100 ways from a source to a sink; the flow has more" in page.inner_text("#flow [data-more]")
        browser.close()
