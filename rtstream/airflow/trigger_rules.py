"""Every trigger rule, decided as Airflow's TriggerRuleDep decides it with `flag_upstream_failed`:
from the states of a task's direct upstream task instances, either a state to set now (skipped,
upstream_failed), or whether the task may run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from rtstream.airflow.states import ALIASES, FINISHED
from rtstream.airflow.states import TaskInstanceState as S

SKIPPED, UPSTREAM_FAILED = S.SKIPPED.value, S.UPSTREAM_FAILED.value


def decide(rule: str, upstream_states: Iterable[str | None],
           setup_states: Iterable[str | None] = ()) -> tuple[str | None, bool]:
    """(the state to set, may it run) for a task whose upstream task instances are in these states
    (`setup_states`: those of the upstream that are setup tasks, for `all_done_setup_success`)."""
    states = list(upstream_states)
    setups = Counter(s for s in setup_states)
    n_setup = sum(setups.values())
    rule = ALIASES.get(rule, rule)
    c = Counter(s for s in states if s is not None)
    upstream = len(states)
    success, skipped, failed = c[S.SUCCESS], c[S.SKIPPED], c[S.FAILED]
    up_failed, removed = c[S.UPSTREAM_FAILED], c[S.REMOVED]
    done = sum(c[s] for s in FINISHED)
    all_done = done >= upstream
    new: str | None = None
    if rule == "all_success":
        new = UPSTREAM_FAILED if (up_failed or failed) else (SKIPPED if skipped else None)
    elif rule == "all_failed":
        new = SKIPPED if (success or skipped) else None
    elif rule == "one_success":
        if all_done and done == skipped:
            new = SKIPPED
        elif all_done and success <= 0:
            new = UPSTREAM_FAILED
    elif rule == "one_failed":
        new = SKIPPED if all_done and not (failed or up_failed) else None
    elif rule == "one_done":
        new = SKIPPED if all_done and not (failed or success) else None
    elif rule == "none_failed":
        new = UPSTREAM_FAILED if (up_failed or failed) else None
    elif rule == "none_failed_min_one_success":
        new = UPSTREAM_FAILED if (up_failed or failed) else (SKIPPED if upstream and skipped == upstream else None)
    elif rule == "none_skipped":
        new = SKIPPED if skipped else None
    elif rule == "all_skipped":
        new = SKIPPED if (success or failed or up_failed) else None
    elif rule == "all_done_setup_success" and all_done and n_setup:
        if setups[S.SKIPPED] >= n_setup:  # every setup skipped: skip
            new = SKIPPED
        elif not setups[S.SUCCESS]:  # no setup succeeded: upstream_failed
            new = UPSTREAM_FAILED
    if new is not None:
        return new, False
    runnable = {
        "all_success": upstream - success - removed <= 0,
        "all_failed": upstream - failed - up_failed - removed <= 0,
        "all_done": all_done,
        "all_skipped": upstream - skipped <= 0,
        "one_success": success > 0,
        "one_failed": bool(failed or up_failed),
        "one_done": success + failed > 0,
        "none_failed": upstream - success - skipped - removed <= 0,
        "none_failed_min_one_success": upstream - success - skipped - removed <= 0,
        "none_skipped": all_done and skipped == 0,
        "always": True,
        "all_done_setup_success": all_done and (not n_setup or setups[S.SUCCESS] > 0),
    }[rule]
    return None, runnable
