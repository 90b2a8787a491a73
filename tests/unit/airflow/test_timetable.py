"""The data interval of a manual run (Airflow's infer_manual_data_interval): cron in the DAG's time
zone, presets, timedelta, None."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from rtstream.airflow.dag_model import DAG
from rtstream.airflow.timetable import Cron, manual_data_interval

AT = datetime(2024, 3, 5, 7, 30, tzinfo=UTC)


def test_daily_cron_in_seoul_is_a_seoul_day() -> None:
    dag = DAG("d", schedule="@daily", start_date=datetime(2024, 1, 1, tzinfo=ZoneInfo("Asia/Seoul")))
    # 07:30 UTC is 16:30 in Seoul: the last Seoul midnight is 2024-03-04T15:00Z
    assert manual_data_interval(dag, AT) == (datetime(2024, 3, 3, 15, tzinfo=UTC), datetime(2024, 3, 4, 15, tzinfo=UTC))


def test_cron_ranges_steps_and_weekdays() -> None:
    dag = DAG("d", schedule="*/15 9-17 * * mon-fri", start_date=datetime(2024, 1, 1, tzinfo=UTC))
    saturday = datetime(2024, 3, 9, 12, 0, tzinfo=UTC)
    assert manual_data_interval(dag, saturday) == (datetime(2024, 3, 8, 17, 30, tzinfo=UTC),
                                                   datetime(2024, 3, 8, 17, 45, tzinfo=UTC))
    assert Cron("0 0 1 */3 *").at_or_before(datetime(2024, 6, 30)) == datetime(2024, 4, 1)


def test_timedelta_none_and_default() -> None:
    assert manual_data_interval(DAG("d", schedule=timedelta(hours=2)), AT) == (AT - timedelta(hours=2), AT)
    assert manual_data_interval(DAG("d", schedule=None), AT) == (AT, AT)
    assert manual_data_interval(DAG("d"), AT) == (AT - timedelta(days=1), AT)  # Airflow 2's default: one day
