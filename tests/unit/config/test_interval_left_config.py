"""interval_join how = "left": what it asks of the config, each refusal one line with its key (exit 2)."""

import pytest

from rtstream.config.load import load_settings
from tests.support import run_cli, write_config
from tests.unit.config.test_join_config import doc, refused

LEFT = {"type": "interval_join", "left": "orders", "right": "payments", "on": "user_id", "lower": "-5s",
        "upper": "1m", "how": "left"}


def test_a_left_interval_join_with_checkpoints_loads_and_keeps_its_matches():
    d = doc(LEFT) | {"state": {"checkpoint_interval": "5s"}}
    settings = load_settings(doc=d, overrides=[], env={})
    assert settings.components["j"].config.how == "left"
    from rtstream.runtime.build import build_parts

    step = build_parts(settings).engine.steps[0]
    assert step.matched == set() and step.upper == 60_000


@pytest.mark.parametrize("extra, reason", [
    ({}, '"left" needs state.checkpoint_interval (e.g. "10s"): whether a left row found a partner is kept in the '
         "checkpoint"),
    ({"state": {"checkpoint_interval": "5s"}, "window": {"type": "session", "gap": "1m"}},
     '"left" needs tumbling or hopping windows, not session windows'),
])
def test_what_left_needs_is_refused_with_the_reason(extra, reason):
    got = refused(doc(LEFT) | extra)
    assert reason in got["stages.j.how"], got


def test_an_unknown_how_is_refused(tmp_path):
    cfg = write_config(tmp_path / "c.toml", doc(dict(LEFT, how="outer")) | {"state": {"checkpoint_interval": "5s"}})
    res = run_cli("validate", "-c", str(cfg))
    assert res.returncode == 2 and "stages.j.how" in res.stderr + res.stdout, res.stderr
    assert "Traceback" not in res.stderr
