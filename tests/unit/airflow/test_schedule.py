"""The next scheduled run, as Airflow 2.10's `DAG.next_dagrun_info` computes it (the expected values
worked through airflow/timetables/interval.py by hand: alignment, catchup's skip to the latest
interval, end_date, @once)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from rtstream.airflow.dag_model import DAG
from rtstream.airflow.schedule import CronTimetable, NextRun, next_run

SEOUL = ZoneInfo("Asia/Seoul")
NOW = datetime(2024, 3, 5, 7, 30, 10, tzinfo=UTC)  # 16:30:10 in Seoul


def z(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def interval(start: datetime, end: datetime) -> NextRun:
    return NextRun(start, start, end, end)


def test_a_daily_cron_in_seoul_starts_at_the_first_seoul_point_after_start_date() -> None:
    dag = DAG("d", schedule="0 6 * * *", start_date=datetime(2024, 1, 1, tzinfo=SEOUL))
    first = next_run(dag, None, NOW)
    assert first == interval(z(2023, 12, 31, 21), z(2024, 1, 1, 21))  # 06:00 Seoul, both ends
    assert next_run(dag, (first.interval_start, first.interval_end), NOW) == interval(z(2024, 1, 1, 21),
                                                                                       z(2024, 1, 2, 21))


def test_catchup_false_runs_the_latest_complete_interval_only() -> None:
    dag = DAG("d", schedule="0 6 * * *", start_date=datetime(2024, 1, 1, tzinfo=SEOUL), catchup=False)
    latest = interval(z(2024, 3, 3, 21), z(2024, 3, 4, 21))
    assert next_run(dag, None, NOW) == latest
    assert next_run(dag, (z(2024, 1, 1, 21), z(2024, 1, 2, 21)), NOW) == latest  # after a long stop
    # on a boundary, the interval that starts now (cron's _skip_to_latest)
    assert next_run(dag, None, z(2024, 3, 4, 21)) == interval(z(2024, 3, 3, 21), z(2024, 3, 4, 21))


def test_a_cron_start_date_between_points_aligns_to_the_next() -> None:
    dag = DAG("d", schedule="*/5 * * * *", start_date=z(2024, 1, 1, 10, 2))
    assert next_run(dag, None, NOW) == interval(z(2024, 1, 1, 10, 5), z(2024, 1, 1, 10, 10))


def test_timedelta_intervals_start_at_start_date_and_skip_to_the_rounded_latest() -> None:
    dag = DAG("d", schedule=timedelta(hours=1), start_date=z(2024, 1, 1, 0, 30))
    assert next_run(dag, None, NOW) == interval(z(2024, 1, 1, 0, 30), z(2024, 1, 1, 1, 30))
    dag.catchup = False
    assert next_run(dag, None, NOW) == interval(z(2024, 3, 5, 6), z(2024, 3, 5, 7))
    assert next_run(DAG("d", start_date=z(2024, 1, 1)), None, NOW) == interval(z(2024, 1, 1), z(2024, 1, 2))


def test_end_date_lets_the_interval_that_starts_on_it_run_and_no_later() -> None:
    dag = DAG("d", schedule=timedelta(days=1), start_date=z(2024, 1, 1), end_date=z(2024, 1, 3))
    assert next_run(dag, (z(2024, 1, 2), z(2024, 1, 3)), NOW) == interval(z(2024, 1, 3), z(2024, 1, 4))
    assert next_run(dag, (z(2024, 1, 3), z(2024, 1, 4)), NOW) is None


def test_once_none_and_naive_dates() -> None:
    once = DAG("d", schedule="@once", start_date=datetime(2024, 2, 1, 12))  # naive = UTC
    assert next_run(once, None, NOW) == interval(z(2024, 2, 1, 12), z(2024, 2, 1, 12))
    assert next_run(once, (z(2024, 2, 1, 12), z(2024, 2, 1, 12)), NOW) is None
    assert next_run(DAG("d", schedule=None, start_date=z(2024, 1, 1)), None, NOW) is None
    assert next_run(DAG("d", schedule="@daily"), None, NOW) is None  # no start_date: never scheduled


def test_cron_next_and_prev_are_strict_and_cross_days_in_the_dag_zone() -> None:
    table = CronTimetable("30 23 * * mon-fri", SEOUL)
    friday = datetime(2024, 3, 8, 23, 30, tzinfo=SEOUL)
    assert table.get_next(friday) == datetime(2024, 3, 11, 23, 30, tzinfo=SEOUL)  # Monday
    assert table.get_prev(datetime(2024, 3, 11, 23, 30, tzinfo=SEOUL)) == friday
    assert table.get_prev(friday + timedelta(seconds=1)) == friday
