"""An event-time table_join's config: its new keys refused with the dotted key and a reason."""

import pytest

from rtstream.config.load import load_settings
from rtstream.engine.table_state import TableState
from rtstream.engine.temporal_state import TemporalTable
from rtstream.runtime.build import build_parts
from tests.support import run_cli, write_config
from tests.unit.config.test_join_config import doc, refused

TJ = {"type": "table_join", "stream": "orders", "table": "payments", "on": "user_id"}


@pytest.mark.parametrize("stage, key, reason", [
    (dict(TJ, time="wall"), "stages.j.time", "'event' or 'processing'"),
    (dict(TJ, max_waiting=0), "stages.j.max_waiting", "greater than 0"),
    (dict(TJ, max_waiting="many"), "stages.j.max_waiting", "valid integer"),
])
def test_mistakes_are_refused_with_the_key(stage, key, reason):
    problems = refused(doc(stage))
    assert key in problems and reason in problems[key], problems


def test_event_time_is_the_default_and_processing_time_is_kept_on_request():
    steps = [build_parts(load_settings(doc=doc(stage), overrides=[], env={})).engine.steps[0]
             for stage in (TJ, dict(TJ, time="processing"))]
    assert [type(s) for s in steps] == [TemporalTable, TableState]


def test_count_windows_need_processing_time():
    d = doc(TJ)
    d["window"] = {"type": "count", "size": 10}
    d["state"] = {"checkpoint_interval": "10s"}
    assert refused(d)["stages.j.time"].startswith("an event-time table_join hands rows on in time order")
    d["stages"]["j"] = dict(TJ, time="processing")
    load_settings(doc=d, overrides=[], env={})


def test_the_daemon_says_a_bad_time_in_one_line_with_exit_2(tmp_path):
    cfg = write_config(tmp_path / "bad.toml", doc(dict(TJ, time="later")))
    res = run_cli("validate", "-c", str(cfg), timeout=60)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "stages.j.time" in res.stderr
