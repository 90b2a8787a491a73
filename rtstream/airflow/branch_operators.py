"""Airflow 2.10's time-based branch operators: `BranchDateTimeOperator` (airflow/operators/datetime.py),
`BranchDayOfWeekOperator` (airflow/operators/weekday.py, with `WeekDay`) and `LatestOnlyOperator`
(airflow/operators/latest_only.py). Each is a `BaseBranchOperator`: the task ids it returns are
followed (and its XCom), its other direct downstream tasks skipped.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from typing import Any

from rtstream.airflow.airflow3 import follows_manual_run
from rtstream.airflow.operators import BaseBranchOperator
from rtstream.airflow.schedule import timetable_of
from rtstream.airflow.states import AirflowException


def _aware(value: datetime | None, tz: Any) -> datetime | None:
    """timezone.coerce_datetime: a naive datetime is taken to be in `tz` (UTC when None)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=tz or UTC)


def target_times_as_dates(base: datetime, lower: datetime | time | None,
                          upper: datetime | time | None) -> tuple[Any, Any]:
    """Times of day become datetimes on `base`'s date; an upper before the lower is the next day's."""
    if isinstance(lower, datetime) and isinstance(upper, datetime):
        return lower, upper
    if isinstance(lower, time):
        lower = datetime.combine(base, lower)
    if isinstance(upper, time):
        upper = datetime.combine(base, upper)
    if lower is None or upper is None:
        return lower, upper
    if upper < lower:
        upper += timedelta(days=1)
    return lower, upper


class BranchDateTimeOperator(BaseBranchOperator):
    """Follows `follow_task_ids_if_true` when now (or the logical date) is within [lower, upper]."""

    def __init__(self, *, follow_task_ids_if_true: str | Iterable[str], follow_task_ids_if_false: str | Iterable[str],
                 target_lower: datetime | time | None = None, target_upper: datetime | time | None = None,
                 use_task_logical_date: bool = False, use_task_execution_date: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        if target_lower is None and target_upper is None:
            raise AirflowException("Both target_upper and target_lower are None. At least one "
                                   "must be defined to be compared to the current datetime")
        self.target_lower, self.target_upper = target_lower, target_upper
        self.follow_task_ids_if_true, self.follow_task_ids_if_false = follow_task_ids_if_true, follow_task_ids_if_false
        self.use_task_logical_date = use_task_logical_date or use_task_execution_date

    def choose_branch(self, context: dict[str, Any]) -> str | Iterable[str]:
        now = context["logical_date"] if self.use_task_logical_date else datetime.now(UTC)
        lower, upper = target_times_as_dates(now, self.target_lower, self.target_upper)
        tz = self.dag.timezone if self.dag is not None else None
        lower, upper = _aware(lower, tz), _aware(upper, tz)
        if upper is not None and upper < now:
            return self.follow_task_ids_if_false
        if lower is not None and lower > now:
            return self.follow_task_ids_if_false
        return self.follow_task_ids_if_true


class WeekDay(enum.IntEnum):
    """airflow.utils.weekday.WeekDay: ISO weekday numbers."""

    MONDAY = 1
    TUESDAY = 2
    WEDNESDAY = 3
    THURSDAY = 4
    FRIDAY = 5
    SATURDAY = 6
    SUNDAY = 7

    @classmethod
    def get_weekday_number(cls, week_day_str: str) -> int:
        sanitized = week_day_str.upper()
        if sanitized not in cls.__members__:
            raise AttributeError(f'Invalid Week Day passed: "{week_day_str}"')
        return cls[sanitized].value

    @classmethod
    def validate_week_day(cls, week_day: Any) -> set[int]:
        if isinstance(week_day, str):
            return {cls.get_weekday_number(week_day)}
        if isinstance(week_day, WeekDay):
            return {week_day.value}
        if isinstance(week_day, Iterable) and all(isinstance(d, (str, WeekDay)) for d in week_day):
            return {cls.get_weekday_number(d) if isinstance(d, str) else d.value for d in week_day}
        raise TypeError(f"Unsupported Type for week_day parameter: {type(week_day)}. Input should be iterable "
                        "type: str, set, list, dict or Weekday enum type")


class BranchDayOfWeekOperator(BaseBranchOperator):
    """Follows `follow_task_ids_if_true` on the given week days (today's, or the logical date's)."""

    def __init__(self, *, follow_task_ids_if_true: str | Iterable[str], follow_task_ids_if_false: str | Iterable[str],
                 week_day: Any, use_task_logical_date: bool = False, use_task_execution_date: bool = False,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.follow_task_ids_if_true, self.follow_task_ids_if_false = follow_task_ids_if_true, follow_task_ids_if_false
        self.week_day, self._week_day_num = week_day, WeekDay.validate_week_day(week_day)
        self.use_task_logical_date = use_task_logical_date or use_task_execution_date

    def choose_branch(self, context: dict[str, Any]) -> str | Iterable[str]:
        if self.use_task_logical_date:
            now = context["logical_date"]
        else:
            tz = (self.dag.timezone if self.dag is not None else None) or UTC
            now = datetime.now(UTC).astimezone(tz)
        return self.follow_task_ids_if_true if now.isoweekday() in self._week_day_num else self.follow_task_ids_if_false


class LatestOnlyOperator(BaseBranchOperator):
    """Skips its direct downstream unless now is within the run after this one (the latest run), or
    the run was triggered externally. `airflow dags test` makes a run that is not externally
    triggered, so an old logical date skips."""

    ui_color = "#e9ffdb"

    def choose_branch(self, context: dict[str, Any]) -> str | Iterable[str]:
        downstream = sorted(self.downstream_task_ids)
        dag_run = context["dag_run"]
        if dag_run.external_trigger or follows_manual_run(context["dag"], dag_run):
            return downstream
        table = timetable_of(context["dag"])
        if table is None or isinstance(table, str):  # no next run (None, @once, datasets): follow all
            return downstream
        # DAG.next_dagrun_info(the run's data interval, restricted=False)
        left = table.align_to_prev(dag_run.data_interval_end)
        right = table.get_next(left)
        now = datetime.now(UTC)
        return downstream if left < now <= right else []


NAMES: dict[str, Any] = {"BranchDateTimeOperator": BranchDateTimeOperator, "WeekDay": WeekDay,
                         "BranchDayOfWeekOperator": BranchDayOfWeekOperator, "LatestOnlyOperator": LatestOnlyOperator}
