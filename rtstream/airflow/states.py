"""Airflow's names users see: task instance states, trigger rules, and the exceptions a task raises.

The strings are Airflow's own (`airflow.utils.state.TaskInstanceState`, `airflow.utils.trigger_rule
.TriggerRule`, `airflow.exceptions`), so a DAG file comparing against them, and the JSON of
`rtstream dags test`, read the same as under Airflow.
"""

from __future__ import annotations

from enum import StrEnum


class TaskInstanceState(StrEnum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"
    UPSTREAM_FAILED = "upstream_failed"
    UP_FOR_RETRY = "up_for_retry"
    REMOVED = "removed"


class DagRunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


class State:
    """Airflow 1.10's `airflow.utils.state.State`: the same strings as class attributes."""

    NONE = None
    SCHEDULED, QUEUED, RUNNING = "scheduled", "queued", "running"
    SUCCESS, FAILED, SKIPPED = "success", "failed", "skipped"
    UPSTREAM_FAILED, UP_FOR_RETRY, REMOVED = "upstream_failed", "up_for_retry", "removed"


FINISHED = frozenset({TaskInstanceState.SUCCESS, TaskInstanceState.FAILED, TaskInstanceState.SKIPPED,
                      TaskInstanceState.UPSTREAM_FAILED, TaskInstanceState.REMOVED})


class TriggerRule(StrEnum):
    ALL_SUCCESS = "all_success"
    ALL_FAILED = "all_failed"
    ALL_DONE = "all_done"
    ALL_SKIPPED = "all_skipped"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"
    ONE_DONE = "one_done"
    NONE_FAILED = "none_failed"
    NONE_FAILED_MIN_ONE_SUCCESS = "none_failed_min_one_success"
    NONE_SKIPPED = "none_skipped"
    ALWAYS = "always"
    ALL_DONE_SETUP_SUCCESS = "all_done_setup_success"  # a teardown's rule
    # Airflow's older names for two of the above
    NONE_FAILED_OR_SKIPPED = "none_failed_or_skipped"
    DUMMY = "dummy"


ALIASES = {"none_failed_or_skipped": "none_failed_min_one_success", "dummy": "always"}


class AirflowException(Exception):
    """Base of Airflow's exceptions: raised by a task, it fails this try (retries still apply)."""


class AirflowSkipException(AirflowException):
    """Raised by a task: this task instance is skipped, not failed."""


class AirflowFailException(AirflowException):
    """Raised by a task: fail now, without the retries that are left."""


class AirflowTaskTimeout(AirflowException):
    """The try ran past the task's execution_timeout."""


class AirflowNotFoundException(AirflowException):
    pass


class AirflowSensorTimeout(AirflowException):
    pass


class DagRefused(Exception):
    """A DAG file rtstream cannot load or run as it is; the message is the one line the user sees."""
