"""A DAG's dataset condition as Airflow 2.10 evaluates it over the queued assets, and the time part
of a CronTriggerTimetable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from rtstream.airflow.asset_schedule import condition_of, evaluate, next_time_run, outlet_ids
from rtstream.airflow.assets import Asset, AssetOrTimeSchedule, CronTriggerTimetable, Dataset

A, B, C = Dataset("s3://a"), Dataset("s3://b"), Dataset("s3://c")
QA, QB, QC = ("s3://a", "s3://a"), ("s3://b", "s3://b"), ("s3://c", "s3://c")


def _dag(schedule: object, **kw: object) -> SimpleNamespace:
    base = {"schedule": schedule, "tasks": [], "start_date": None, "end_date": None, "catchup": True,
            "timezone": None}
    return SimpleNamespace(**{**base, **kw})


def test_a_list_is_all_of_them_and_or_and_nest_as_written() -> None:
    both = condition_of(_dag([A, B]))
    assert both is not None and not evaluate(both, {QA}) and evaluate(both, {QA, QB})
    nested = condition_of(_dag((A | B) & C))
    assert nested is not None
    assert [evaluate(nested, q) for q in ({QA}, {QC}, {QA, QC}, {QB, QC})] == [False, False, True, True]
    assert condition_of(_dag(timedelta(days=1))) is None and condition_of(_dag(None)) is None
    timed = condition_of(_dag(AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 * * * *"), datasets=[A])))
    assert timed is not None and evaluate(timed, {QA})


def test_assets_match_by_name_and_uri_and_refs_by_one() -> None:
    task = SimpleNamespace(outlets=[Asset("orders", uri="s3://o"), A, "not an asset"])
    assert outlet_ids(task) == [("orders", "s3://o"), QA]
    assert evaluate(Asset.ref(name="orders"), {("orders", "s3://o")})
    assert evaluate(Asset.ref(uri="s3://o"), {("orders", "s3://o")})
    assert not evaluate(Asset("orders", uri="s3://other"), {("orders", "s3://o")})


def test_a_cron_trigger_runs_at_each_point_from_the_start() -> None:
    start = datetime(2024, 1, 1, 0, 0, 30, tzinfo=UTC)
    dag = _dag(AssetOrTimeSchedule(timetable=CronTriggerTimetable("* * * * *", timezone="UTC"), datasets=[A]),
               start_date=start)
    now = datetime(2024, 1, 1, 0, 5, tzinfo=UTC)
    first = next_time_run(dag, None, now)
    assert first is not None and first.logical_date == first.run_after == datetime(2024, 1, 1, 0, 1, tzinfo=UTC)
    second = next_time_run(dag, (first.interval_start, first.interval_end), now)
    assert second is not None and second.logical_date == datetime(2024, 1, 1, 0, 2, tzinfo=UTC)
