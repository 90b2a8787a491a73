"""What docs/CONFIG.md (generated from the config models' descriptions) tells a user about keys whose
description or type once said otherwise than the code does."""

import pytest

from rtstream.stages.join import IntervalJoinConfig
from tests.support import ROOT


def section(kind: str) -> str:
    doc = (ROOT / "docs" / "CONFIG.md").read_text()
    return doc.split(f'### [stages.NAME] type = "{kind}"\n', 1)[1].split("\n### ", 1)[0]


def test_the_interval_bounds_are_typed_durations_and_take_a_sign():
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in section("interval_join").splitlines()
            if line.startswith("| `")}
    assert rows["`stages.NAME.lower`"] == rows["`stages.NAME.upper`"] == "duration"  # was "number"
    cfg = IntervalJoinConfig(type="interval_join", left="a", right="b", on="k", lower="-5s", upper="1m")
    assert (cfg.lower, cfg.upper) == (-5.0, 60.0)
    with pytest.raises(ValueError, match="needs a unit"):  # not "must not be negative": the sign is allowed
        IntervalJoinConfig(type="interval_join", left="a", right="b", on="k", lower=-5, upper="1m")


def test_map_is_described_per_record():
    call = next(line for line in section("map").splitlines() if line.startswith("| `stages.NAME.call`"))
    assert "each record" in call and "window's rows" not in call  # it was python's text
    python_call = next(line for line in section("python").splitlines() if line.startswith("| `stages.NAME.call`"))
    assert "window's rows" in python_call
