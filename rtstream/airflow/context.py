"""A task instance's context (`ds`, `ts`, `logical_date`, `data_interval_*`, `params`, `ti`, `dag_run`,
`macros`, `var` ...) and Airflow's `Variable`, read from `AIRFLOW_VAR_<NAME>` as Airflow's environment
backend does.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from rtstream.airflow.asset_event_values import TriggeringAssetEvents, triggering_dataset_events
from rtstream.airflow.asset_events import InletEventsAccessors, outlet_events_of
from rtstream.airflow.dag_model import NOTSET, resolve_params
from rtstream.airflow.states import AirflowException

_set_here: dict[str, str] = {}  # Variable.set within this process (nothing is kept after it)


class Variable:
    """`airflow.models.Variable`: `AIRFLOW_VAR_<KEY>` from the environment (or what this process set)."""

    @classmethod
    def get(cls, key: str, default_var: Any = NOTSET, deserialize_json: bool = False) -> Any:
        raw = _set_here.get(key, os.environ.get(f"AIRFLOW_VAR_{key.upper()}"))
        if raw is None:
            if default_var is not NOTSET:
                return default_var
            raise KeyError(f"Variable {key} does not exist")
        return json.loads(raw) if deserialize_json else raw

    @classmethod
    def set(cls, key: str, value: Any, serialize_json: bool = False, **_: Any) -> None:
        _set_here[key] = json.dumps(value) if serialize_json else str(value)

    @classmethod
    def setdefault(cls, key: str, default: Any, deserialize_json: bool = False) -> Any:
        found = cls.get(key, default_var=None, deserialize_json=deserialize_json)
        if found is None:
            cls.set(key, default, serialize_json=deserialize_json)
            return default
        return found


class _VarAccessor:
    def __init__(self, deserialize_json: bool):
        self._json = deserialize_json

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        return Variable.get(key, deserialize_json=self._json)

    def get(self, key: str, default_var: Any = NOTSET) -> Any:
        return Variable.get(key, default_var=default_var, deserialize_json=self._json)


def ds_add(ds: str, days: int) -> str:
    return (datetime.strptime(ds, "%Y-%m-%d") + timedelta(days=days)).strftime("%Y-%m-%d")


def ds_format(ds: str, input_format: str, output_format: str) -> str:
    return datetime.strptime(ds, input_format).strftime(output_format)


MACROS = SimpleNamespace(ds_add=ds_add, ds_format=ds_format, datetime=datetime, timedelta=timedelta, time=time,
                         uuid=uuid, random=random, json=json)


def _airflow_datetime(dt: datetime) -> Any:
    """A pendulum DateTime where pendulum is installed (what Airflow hands tasks), else the datetime."""
    try:
        import pendulum
    except ImportError:
        return dt
    return pendulum.instance(dt)


@dataclass
class DagRunInfo:
    """The `dag_run` of the context."""

    dag_id: str
    run_id: str
    logical_date: Any
    data_interval_start: Any
    data_interval_end: Any
    run_type: str = "manual"
    conf: dict[str, Any] = field(default_factory=dict)
    external_trigger: bool = False  # DAG.test()'s run is made by create_dagrun's default: not external
    state: str = "running"
    partition_key: str | None = None  # Airflow 3's partitioned runs; a manual run has none
    partition_date: Any = None
    # the asset events a run consumed (rtstream.airflow.asset_event_values), and how a task reads an
    # asset's events (`inlet_events`): given by the daemon, which keeps them; none under `dags test`
    asset_events: list[Any] = field(default_factory=list)
    read_events: Any = None

    @property
    def execution_date(self) -> Any:
        return self.logical_date


def make_dag_run(dag_id: str, logical_date: datetime, interval: tuple[datetime, datetime]) -> DagRunInfo:
    at = _airflow_datetime(logical_date)
    return DagRunInfo(dag_id=dag_id, run_id=f"manual__{logical_date.isoformat()}", logical_date=at,
                      data_interval_start=_airflow_datetime(interval[0]),
                      data_interval_end=_airflow_datetime(interval[1]))


def build_context(dag: Any, task: Any, ti: Any, dag_run: DagRunInfo) -> dict[str, Any]:
    """What Airflow 2 passes a task (the keys a DAG file reads; deprecated ones where old files use them)."""
    at: datetime = dag_run.logical_date
    ds = at.strftime("%Y-%m-%d")
    ts = at.isoformat()
    # Airflow's process_params: the DAG's, the task's, then dag_run.conf (dag_run_conf_overrides_params)
    params = resolve_params(dag.params, getattr(task, "params", None), dag_run.conf)
    if not isinstance(params, dict):
        raise AirflowException(f"task {task.task_id}: params must be a dict")
    return {
        "dag": dag, "task": task, "ti": ti, "task_instance": ti, "dag_run": dag_run, "run_id": dag_run.run_id,
        "ds": ds, "ds_nodash": ds.replace("-", ""), "ts": ts, "ts_nodash": at.strftime("%Y%m%dT%H%M%S"),
        "ts_nodash_with_tz": ts.replace("-", "").replace(":", ""),
        "task_instance_key_str": f"{dag.dag_id}__{task.task_id}__{ds.replace('-', '')}",
        "logical_date": at, "execution_date": at,
        "data_interval_start": dag_run.data_interval_start, "data_interval_end": dag_run.data_interval_end,
        "prev_data_interval_start_success": None, "prev_data_interval_end_success": None,
        "prev_start_date_success": None, "prev_execution_date": None, "next_execution_date": None,
        "next_ds": dag_run.data_interval_end.strftime("%Y-%m-%d"),
        "next_ds_nodash": dag_run.data_interval_end.strftime("%Y%m%d"),
        "prev_ds": dag_run.data_interval_start.strftime("%Y-%m-%d"),
        "prev_ds_nodash": dag_run.data_interval_start.strftime("%Y%m%d"),
        "yesterday_ds": ds_add(ds, -1), "yesterday_ds_nodash": ds_add(ds, -1).replace("-", ""),
        "tomorrow_ds": ds_add(ds, 1), "tomorrow_ds_nodash": ds_add(ds, 1).replace("-", ""),
        "params": params, "conf": SimpleNamespace(), "macros": MACROS,
        "var": {"value": _VarAccessor(False), "json": _VarAccessor(True)},
        "inlets": list(getattr(task, "inlets", [])), "outlets": list(getattr(task, "outlets", [])),
        "outlet_events": outlet_events_of(ti),
        "inlet_events": InletEventsAccessors(getattr(task, "inlets", []), dag_run.read_events),
        "triggering_asset_events": TriggeringAssetEvents(dag_run.asset_events),
        "triggering_dataset_events": triggering_dataset_events(dag_run.asset_events),
        # DAG.test() runs each task through _run_raw_task(test_mode=False)
        "partition_key": dag_run.partition_key, "test_mode": False, "map_index_template": None,
        "expanded_ti_count": None, "templates_dict": getattr(task, "templates_dict", None),
    }
