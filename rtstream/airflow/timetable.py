"""A DAG's schedule as Airflow reads it, and the data interval of a manual run (`dags test`):
`Timetable.infer_manual_data_interval(run_after=logical_date)`.

- cron or preset: the interval that ends at the latest cron point at or before the logical date;
- timedelta: [logical_date - delta, logical_date];
- None, `@once`, `@continuous`, datasets: the exact instant [logical_date, logical_date].
Cron points are computed in the DAG's time zone (the start_date's tzinfo), then given in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from rtstream.airflow.assets import StandInTimetable
from rtstream.airflow.dag_model import NOTSET
from rtstream.airflow.states import AirflowException

PRESETS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *",
           "@quarterly": "0 0 1 */3 *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@midnight": "0 0 * * *"}
_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]
_NAMES = {"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10,
          "nov": 11, "dec": 12, "sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}


def _field(text: str, lo: int, hi: int) -> set[int]:
    out: set[int] = set()
    for part in text.lower().split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if body in ("*", "?"):
            start, end = lo, hi
        else:
            a, _, b = body.partition("-")
            start = int(_NAMES.get(a, a))
            end = int(_NAMES.get(b, b)) if b else (hi if step_text else start)
        if not (lo <= start <= hi and lo <= end <= hi + 1):
            raise AirflowException(f"cron field {text!r}: {part!r} is outside {lo}-{hi}")
        out.update(v % 7 if hi == 6 else v for v in range(start, end + 1, step))
    return out


class Cron:
    def __init__(self, expr: str):
        fields = expr.split()
        if len(fields) != 5:
            raise AirflowException(f"schedule {expr!r}: a cron expression has 5 fields")
        self.expr = expr
        self.minute, self.hour, self.day, self.month, self.weekday = (
            _field(f, lo, hi) for f, (lo, hi) in zip(fields, _RANGES, strict=True))
        self.any_day, self.any_weekday = fields[2] in ("*", "?"), fields[4] in ("*", "?")

    def _day_ok(self, t: datetime) -> bool:
        dom, dow = t.day in self.day, (t.weekday() + 1) % 7 in self.weekday
        if self.any_day or self.any_weekday:  # cron: both restricted means either may match
            return dom and dow
        return dom or dow

    def at_or_before(self, t: datetime) -> datetime:
        """The latest cron point at or before wall time `t` (naive), stepping back by day, hour, minute."""
        t = t.replace(second=0, microsecond=0)
        for _ in range(600_000):
            if t.month not in self.month or not self._day_ok(t):
                t = t.replace(hour=23, minute=59) - timedelta(days=1)
            elif t.hour not in self.hour:
                t = t.replace(minute=59) - timedelta(hours=1)
            elif t.minute not in self.minute:
                t -= timedelta(minutes=1)
            else:
                return t
        raise AirflowException(f"schedule {self.expr!r} has no time in the last years")


def schedule_of(dag: Any) -> Any:
    """The DAG's schedule, with Airflow 2's default (one day) when none was given."""
    return timedelta(days=1) if dag.schedule is NOTSET else dag.schedule


def describe(dag: Any) -> str:
    schedule = schedule_of(dag)
    tz = dag.timezone or UTC
    if isinstance(schedule, str):
        return f"{schedule} ({tz})"
    if isinstance(schedule, timedelta):
        return f"every {schedule}"
    if schedule is None:
        return "None (runs only when triggered)"
    return f"{type(schedule).__name__} (runs only when triggered here)"


def manual_data_interval(dag: Any, logical_date: datetime) -> tuple[datetime, datetime]:
    schedule = schedule_of(dag)
    if isinstance(schedule, timedelta):
        return logical_date - schedule, logical_date
    if isinstance(schedule, StandInTimetable):  # CronTriggerTimetable, DatasetOrTimeSchedule ...
        start, end = schedule.infer_manual_data_interval(run_after=logical_date)
        return start, end
    if isinstance(schedule, str) and schedule not in ("@once", "@continuous"):
        cron = Cron(PRESETS.get(schedule, schedule))
        tz: tzinfo = dag.timezone or UTC
        local = logical_date.astimezone(tz).replace(tzinfo=None)
        end = cron.at_or_before(local)
        start = cron.at_or_before(end - timedelta(minutes=1))
        return _utc(start, tz), _utc(end, tz)
    return logical_date, logical_date


def _utc(wall: datetime, tz: tzinfo) -> datetime:
    return wall.replace(tzinfo=tz).astimezone(UTC) if not hasattr(tz, "convert") else tz.convert(wall).astimezone(UTC)
