"""The run history over the admin API: a default page, `before` paging through every window it
keeps, any of them opened and re-run; re-run with `workers` too."""

from __future__ import annotations

import asyncio
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from rtstream.model.window import iso_utc
from rtstream.runtime.run_history import RunHistory
from rtstream.testing.peers.ports import free_port
from tests.data import BASE_MS, make_events, write_lines
from tests.integration.test_workers import TOKEN, _config
from tests.kafka_helpers import new_topics, produce
from tests.support import Daemon, wait_until, write_config

OLD_WINDOWS = 1500


def call(url: str, body: Any = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"},
                                 data=orjson.dumps(body) if body is not None else None,
                                 method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, orjson.loads(err.read())
    except OSError:
        return 0, None


def _old_history(path: Path) -> list[str]:
    """OLD_WINDOWS one-minute windows from long ago, as a daemon's earlier life would have left them."""
    history = RunHistory(path, keep_windows=10_000)
    starts = []
    for i in range(OLD_WINDOWS):
        start = BASE_MS - (OLD_WINDOWS - i) * 60_000
        starts.append(iso_utc(start))
        history.update(iso_utc(start), iso_utc(start + 60_000), "files", "sink", "success", records=i)
    history.close()
    return starts[::-1]  # newest first


def test_runs_default_page_and_paging_reach_every_window_which_opens_and_reruns(tmp_path):
    state = tmp_path / "state"
    expected = _old_history(state / "runs.db")
    src = tmp_path / "in.jsonl"
    write_lines(src, make_events(200, span_s=60, seed=3))
    port = free_port()
    doc = {
        "pipeline": {"name": "paging", "flow": "events >> files"},
        "window": {"size": "1m", "idle_timeout": "1h"},
        "sources": {"events": {"type": "file", "path": str(src), "follow": True, "poll_interval": "50ms"}},
        "sinks": {"files": {"type": "file", "path": str(tmp_path / "out")}},
        "daemon": {"state_dir": str(state)},
        "admin": {"listen": f"127.0.0.1:{port}", "token": TOKEN, "history": 10_000},
    }
    base = f"http://127.0.0.1:{port}"
    with Daemon(write_config(tmp_path / "rt.toml", doc), tmp_path) as d:
        wait_until(lambda: call(base + "/api/runs?limit=1")[0] == 200, 30, what="the admin server")
        status, first = call(base + "/api/runs")
        assert status == 200 and len(first["windows"]) == 100  # not the whole history
        seen, page = [], first
        while True:
            seen += [w["window_start"] for w in page["windows"]]
            if page["next_before"] is None:
                break
            status, page = call(f"{base}/api/runs?limit=1000&before={page['next_before']}")
            assert status == 200
        assert seen == expected  # every window once, newest first
        oldest = expected[-1]
        status, win = call(f"{base}/api/window?start={oldest}")
        assert status == 200 and win["components"]["files"]["records"] == 0 and win["window_end"] is not None
        status, answer = call(base + "/api/rerun", {"window_start": oldest})
        assert status == 202, answer
        wait_until(lambda: call(f"{base}/api/window?start={oldest}")[1]["rerun"]["state"] != "running", 60,
                   what="the re-run's end")
        status, bad = call(base + "/api/runs?before=yesterday")
        assert status == 400 and "before must be a window start" in bad["error"]
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-2000:]


def test_rerun_works_with_workers(tmp_path, kafka):
    topic, _, group = new_topics(kafka.bootstrap, 2)
    events = make_events(2000, span_s=900, seed=31)
    asyncio.run(produce(kafka.bootstrap, topic, events))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with Daemon(_config(tmp_path, kafka.bootstrap, topic, group, finite=False, admin=port), tmp_path) as d:
        closer = {"user_id": "closer", "ts": BASE_MS + 3_600_000, "amount": 0.0}
        asyncio.run(produce(kafka.bootstrap, topic, [closer] * 4))
        runs = wait_until(lambda: (r := call(base + "/api/runs")[1]) and len(r["windows"]) >= 3 and r, 90,
                          what="closed windows")
        start = runs["windows"][-1]["window_start"]
        status, win = call(f"{base}/api/window?start={start}")
        assert status == 200 and win["components"], win
        status, st = call(base + "/api/status")
        assert st["can_rerun"] is True
        status, answer = call(base + "/api/rerun", {"window_start": start})
        assert status == 202, answer
        done = wait_until(lambda: (r := call(f"{base}/api/window?start={start}")[1]["rerun"])
                          and r["state"] != "running" and r, 120, what="the re-run's end")
        assert done["state"] == "success" and done["exit_code"] == 0, done["output"]
        assert call(base + "/api/runs")[1]["next_before"] is None  # fewer windows than a page
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr[-2000:]
