"""What a DAG scheduled on assets waits for, as Airflow 2.10's scheduler reads it (pure).

- `condition_of`: the DAG's asset condition: a list of datasets is all of them (`DatasetAll`), `a | b`
  any, `a & b` all, nested as written; `DatasetOrTimeSchedule(datasets=...)` its datasets.
- `outlet_ids`: the assets a task's success emits an event for (`Dataset`/`Asset` outlets).
- `evaluate`: `BaseDataset.evaluate(statuses)` over the assets that have a queued event
  (Airflow's `DatasetDagRunQueue` rows of the consumer).
- `next_time_run`: the time part of `DatasetOrTimeSchedule` and a `CronTriggerTimetable`
  (`CronTriggerTimetable.next_dagrun_info`), else `schedule.next_run`.

An asset is identified by (name, uri): a `Dataset`'s name is its URI; `Asset.ref(name=...)` matches by
name, `Asset.ref(uri=...)` by URI. An `AssetAlias` in a schedule stands for the assets events were
added to through it (Airflow re-parses the DAG to that effect), so its consumers are queued by those.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rtstream.airflow.assets import (
    Asset,
    AssetAll,
    AssetAny,
    AssetOrTimeSchedule,
    AssetRef,
    BaseAsset,
    CronTriggerTimetable,
    Dataset,
    DatasetAlias,
)
from rtstream.airflow.schedule import CronTimetable, NextRun, next_run, time_restriction

AssetId = tuple[str, str]


def condition_of(dag: Any) -> BaseAsset | None:
    """The asset condition the DAG is scheduled on; None when it is not scheduled on assets."""
    schedule = dag.schedule
    if isinstance(schedule, AssetOrTimeSchedule):
        schedule = schedule.kwargs.get("assets")
    if isinstance(schedule, (list, tuple)) and schedule and all(isinstance(a, BaseAsset) for a in schedule):
        return AssetAll(*schedule)
    return schedule if isinstance(schedule, BaseAsset) else None


def asset_id(obj: Any) -> AssetId | None:
    if isinstance(obj, Dataset):
        return obj.uri, obj.uri
    if isinstance(obj, Asset):
        return obj.name, obj.uri
    return None


def outlet_ids(task: Any) -> list[AssetId]:
    """The assets whose event a successful try of `task` emits (aliases and refs emit none here)."""
    found = [asset_id(o) for o in getattr(task, "outlets", [])]
    return list(dict.fromkeys(a for a in found if a is not None))


Aliases = dict[str, set[AssetId]]  # an alias's name -> the assets events have been added to through it


def _matches(leaf: BaseAsset, aid: AssetId, aliases: Aliases | None = None) -> bool:
    if isinstance(leaf, DatasetAlias):  # resolved to the assets added through it (Airflow's re-parse)
        return aid in (aliases or {}).get(leaf.name, set())
    if isinstance(leaf, AssetRef):
        return aid[0] == leaf.name if leaf.name is not None else aid[1] == leaf.uri
    if isinstance(leaf, Dataset):
        return aid[1] == leaf.uri
    return asset_id(leaf) == aid


def evaluate(cond: BaseAsset, queued: set[AssetId], aliases: Aliases | None = None) -> bool:
    """Whether the condition holds given the assets with a queued event (an alias: any asset it resolved to)."""
    if isinstance(cond, AssetAll):
        return all(evaluate(c, queued, aliases) for c in cond.objects)
    if isinstance(cond, AssetAny):
        return any(evaluate(c, queued, aliases) for c in cond.objects)
    return any(_matches(cond, aid, aliases) for aid in queued)


def consumes(cond: BaseAsset, aid: AssetId, aliases: Aliases | None = None) -> bool:
    """Whether an event of `aid` concerns a DAG of that condition (Airflow's `consuming_dags`, and the
    DAGs scheduled on an alias the asset was added through)."""
    if isinstance(cond, (AssetAll, AssetAny)):
        return any(consumes(c, aid, aliases) for c in cond.objects)
    return _matches(cond, aid, aliases)


def alias_outlets(task: Any) -> list[str]:
    """The names of the aliases among a task's outlets (`outlet_events[alias].add(...)` goes through them)."""
    return list(dict.fromkeys(o.name for o in getattr(task, "outlets", []) or [] if isinstance(o, DatasetAlias)))


def _cron_trigger_next(dag: Any, table: CronTriggerTimetable, last: tuple[datetime, datetime] | None,
                       now: datetime) -> NextRun | None:
    """`CronTriggerTimetable.next_dagrun_info`: a run at each cron point, its data interval
    [point - interval, point]."""
    cron_expr = table.args[0]
    tz = table.kwargs.get("timezone") or dag.timezone or UTC
    cron = CronTimetable(cron_expr, tz if not isinstance(tz, str) else _zone(tz))
    earliest, latest, catchup = time_restriction(dag)
    if catchup:
        if last is not None:
            start = cron.get_next(last[1])
        elif earliest is None:
            start = cron.align_to_next(now)
        else:
            start = cron.align_to_next(earliest)
    else:
        candidates = [cron.align_to_prev(now)]
        if last is not None:
            candidates.append(cron.get_next(last[1]))
        if earliest is not None:
            candidates.append(cron.align_to_next(earliest))
        start = max(candidates)
    if latest is not None and latest < start:
        return None
    begin = start - table.interval
    return NextRun(begin, begin, start, start)


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return UTC if name.upper() == "UTC" else ZoneInfo(name)


def next_time_run(dag: Any, last: tuple[datetime, datetime] | None, now: datetime) -> NextRun | None:
    """The next run by time: a `DatasetOrTimeSchedule`'s timetable, a `CronTriggerTimetable`, or the
    DAG's interval schedule (`schedule.next_run`)."""
    schedule = dag.schedule
    if isinstance(schedule, AssetOrTimeSchedule):
        schedule = schedule.timetable
        if isinstance(schedule, (str, timedelta)):
            return next_run(_WithSchedule(dag, schedule), last, now)
    if isinstance(schedule, CronTriggerTimetable):
        return _cron_trigger_next(dag, schedule, last, now)
    if isinstance(dag.schedule, AssetOrTimeSchedule):
        return None  # a timetable rtstream does not schedule: the assets only
    return next_run(dag, last, now)


class _WithSchedule:
    """The DAG seen with another schedule (a `DatasetOrTimeSchedule`'s cron string or timedelta)."""

    def __init__(self, dag: Any, schedule: Any):
        self._dag, self.schedule = dag, schedule

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dag, name)
