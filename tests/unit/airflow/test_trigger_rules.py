"""Every trigger rule against Airflow's TriggerRuleDep (flag_upstream_failed): the state set now, or
whether the task may run, for the upstream states that matter."""

from __future__ import annotations

import pytest

from rtstream.airflow.trigger_rules import decide

OK, FAIL, SKIP, UPF, NONE = "success", "failed", "skipped", "upstream_failed", None


@pytest.mark.parametrize(("rule", "upstream", "expected"), [
    ("all_success", [OK, OK], (None, True)),
    ("all_success", [OK, NONE], (None, False)),
    ("all_success", [OK, FAIL], ("upstream_failed", False)),
    ("all_success", [OK, UPF], ("upstream_failed", False)),
    ("all_success", [OK, SKIP], ("skipped", False)),
    ("all_failed", [FAIL, UPF], (None, True)),
    ("all_failed", [FAIL, OK], ("skipped", False)),
    ("all_done", [FAIL, SKIP, OK], (None, True)),
    ("all_done", [FAIL, NONE], (None, False)),
    ("all_skipped", [SKIP, SKIP], (None, True)),
    ("all_skipped", [SKIP, OK], ("skipped", False)),
    ("one_success", [OK, NONE], (None, True)),  # does not wait for the rest
    ("one_success", [SKIP, SKIP], ("skipped", False)),
    ("one_success", [FAIL, SKIP], ("upstream_failed", False)),
    ("one_failed", [FAIL, NONE], (None, True)),
    ("one_failed", [OK, SKIP], ("skipped", False)),
    ("one_done", [OK, NONE], (None, True)),
    ("one_done", [SKIP, UPF], ("skipped", False)),
    ("none_failed", [OK, SKIP], (None, True)),
    ("none_failed", [OK, FAIL], ("upstream_failed", False)),
    ("none_failed_min_one_success", [SKIP, SKIP], ("skipped", False)),
    ("none_failed_min_one_success", [OK, SKIP], (None, True)),
    ("none_failed_or_skipped", [OK, SKIP], (None, True)),  # the old name
    ("none_skipped", [OK, FAIL], (None, True)),
    ("none_skipped", [OK, SKIP], ("skipped", False)),
    ("always", [NONE, NONE], (None, True)),
    ("dummy", [FAIL], (None, True)),
    ("all_success", [], (None, True)),  # a root task
])
def test_rule(rule: str, upstream: list[str | None], expected: tuple[str | None, bool]) -> None:
    assert decide(rule, upstream) == expected
