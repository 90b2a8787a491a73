"""The next scheduled run of a DAG, as Airflow 2.10's `DAG.next_dagrun_info` gives it.

Mirrors `airflow/timetables/interval.py` (`_DataIntervalTimetable.next_dagrun_info`, the cron and
delta `_skip_to_latest`, `_align_to_next` / `_align_to_prev`), `OnceTimetable` and
`DAG._time_restriction` (earliest = the earliest start_date of the DAG and its tasks, latest = the
end_date; `catchup` None = `catchup_by_default`, True). A cron or delta run's logical date is its data
interval's start; it is due (`run_after`) at the interval's end. `@once` runs once at the earliest
start_date. None, `@continuous` and dataset schedules are never due here (only when triggered).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from rtstream.airflow.timetable import PRESETS, Cron, _utc, schedule_of


@dataclass(frozen=True)
class NextRun:
    """Airflow's `DagRunInfo`: the run's logical date, data interval, and when it may be created."""

    logical_date: datetime
    interval_start: datetime
    interval_end: datetime
    run_after: datetime


def _aware(dt: datetime) -> datetime:
    """A naive date is UTC (Airflow's default_timezone), as `timezone.coerce_datetime` reads it."""
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC)


def time_restriction(dag: Any) -> tuple[datetime | None, datetime | None, bool]:
    """(earliest, latest, catchup) of `DAG._time_restriction`."""
    starts = [t.start_date for t in dag.tasks if getattr(t, "start_date", None)]
    if dag.start_date is not None:
        starts.append(dag.start_date)
    earliest = min((_aware(s) for s in starts), default=None)
    latest = _aware(dag.end_date) if dag.end_date is not None else None
    ends = [t.end_date for t in dag.tasks if getattr(t, "end_date", None)]
    if dag.tasks and len(ends) == len(dag.tasks):  # every task has an end_date: the latest of them all
        latest = max(_aware(e) for e in [*ends, *([dag.end_date] if dag.end_date else [])])
    catchup = True if dag.catchup is None else bool(dag.catchup)
    return earliest, latest, catchup


class CronTimetable:
    """`CronDataIntervalTimetable`: cron points in the DAG's time zone, compared in UTC."""

    def __init__(self, expr: str, tz: tzinfo):
        self.cron, self.tz = Cron(PRESETS.get(expr, expr)), tz

    def _wall(self, t: datetime) -> datetime:
        return t.astimezone(self.tz).replace(tzinfo=None)

    def get_next(self, t: datetime) -> datetime:
        """The first cron point strictly after `t`."""
        c, w = self.cron, self._wall(t).replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(600_000):
            if w.month not in c.month or not c._day_ok(w):
                w = w.replace(hour=0, minute=0) + timedelta(days=1)
            elif w.hour not in c.hour:
                w = w.replace(minute=0) + timedelta(hours=1)
            elif w.minute not in c.minute:
                w += timedelta(minutes=1)
            else:
                return _utc(w, self.tz)
        raise ValueError(f"schedule {c.expr!r} has no time in the next years")

    def get_prev(self, t: datetime) -> datetime:
        """The last cron point strictly before `t`."""
        return _utc(self.cron.at_or_before(self._wall(t) - timedelta(microseconds=1)), self.tz)

    def align_to_next(self, t: datetime) -> datetime:
        nxt = self.get_next(t)
        return nxt if self.get_prev(nxt) != t else t

    def align_to_prev(self, t: datetime) -> datetime:
        prev = self.get_prev(t)
        return prev if self.get_next(prev) != t else t

    def skip_to_latest(self, earliest: datetime | None, now: datetime) -> datetime:
        last_start = self.get_prev(now)
        next_start = self.get_next(last_start)
        # on a boundary: the interval that starts now; between two: the one that ended last
        new_start = last_start if next_start == now else self.get_prev(last_start)
        return new_start if earliest is None else max(new_start, self.align_to_next(earliest))


class DeltaTimetable:
    """`DeltaDataIntervalTimetable`: back-to-back intervals of `delta` from the start_date."""

    def __init__(self, delta: timedelta):
        self.delta = delta

    def get_next(self, t: datetime) -> datetime:
        return t + self.delta

    def get_prev(self, t: datetime) -> datetime:
        return t - self.delta

    def align_to_next(self, t: datetime) -> datetime:
        return t

    def align_to_prev(self, t: datetime) -> datetime:
        return t

    def skip_to_latest(self, earliest: datetime | None, now: datetime) -> datetime:
        seconds = self.delta.total_seconds()
        ts = now.timestamp()
        rounded = datetime.fromtimestamp(ts - (ts % seconds), tz=UTC)  # Airflow's _round
        start = self.get_prev(rounded)
        return start if earliest is None else max(start, earliest)


def timetable_of(dag: Any) -> CronTimetable | DeltaTimetable | str | None:
    """The interval timetable of `dag`; "@once" for OnceTimetable; None when it is never due here."""
    schedule = schedule_of(dag)
    if isinstance(schedule, timedelta):
        return DeltaTimetable(schedule)
    if schedule == "@once":
        return "@once"
    if isinstance(schedule, str) and schedule != "@continuous":
        return CronTimetable(schedule, dag.timezone or UTC)
    return None


def next_run(dag: Any, last_interval: tuple[datetime, datetime] | None, now: datetime) -> NextRun | None:
    """The run after the last scheduled one (`last_interval`, None for the first), or None when there
    is none: `DAG.next_dagrun_info(last_automated_dagrun)` with the DAG's time restriction."""
    earliest, latest, catchup = time_restriction(dag)
    table = timetable_of(dag)
    if table is None:
        return None
    if table == "@once":
        if last_interval is not None or earliest is None or (latest is not None and earliest > latest):
            return None
        return NextRun(earliest, earliest, earliest, earliest)
    assert not isinstance(table, str)
    if not catchup:
        earliest = table.skip_to_latest(earliest, now)
    elif earliest is not None:
        earliest = table.align_to_next(earliest)
    if last_interval is None:
        if earliest is None:
            return None
        start = earliest
    else:
        aligned = table.align_to_prev(last_interval[1])
        start = max(aligned, earliest) if earliest is not None else aligned
    if latest is not None and start > latest:
        return None
    end = table.get_next(start)
    return NextRun(start, start, end, end)
