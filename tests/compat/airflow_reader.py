"""Runs inside .venv-airflow (the real apache-airflow), never under rtstream's venv.

Jobs for tests/compat/oracle.py, each printing one JSON document on stdout:
- `list FILE`: the DAG ids a DagBag finds in FILE (as `airflow dags test -S FILE` would load it),
  and the import errors if any.
- `serialize FOLDER` (Airflow 2): every DAG of FOLDER serialised into the metadata DB.
- `read DAG_ID LOGICAL_DATE`: after `airflow dags test`, the run's state and, per task instance,
  state, try_number, map_index and every XCom it left, deserialised by Airflow's own XCom backend.

Reading the metadata DB after the run (rather than a listener) is what `airflow dags test` leaves
behind for certain: every state change of the run is committed there, listeners are not called for
every transition in `dags test` (skips set by a branch, upstream_failed set by the scheduler loop).
"""

from __future__ import annotations

import datetime
import json
import sys
from types import SimpleNamespace
from typing import Any


def _jsonable(value: Any) -> Any:
    """XCom values as JSON: tuples and sets become lists, dates ISO strings, anything else its repr
    (marked so a reader knows it was not JSON in Airflow either)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_jsonable(v) for v in value), key=repr)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return {"__repr__": repr(value)}


def _xcom_value(raw: Any) -> Any:
    """The value a task returned or pushed, as Airflow's own XCom backend restores it."""
    try:  # Airflow 3: a JSON column; XComModel.deserialize_value undoes XComEncoder where it was used.
        from airflow.models.xcom import XComModel
    except ImportError:
        XComModel = None
    if XComModel is not None:
        return XComModel.deserialize_value(SimpleNamespace(value=raw))
    # Airflow 2.10: JSON written by XComEncoder, bytes (or str, as SQLite may hand it back).
    from airflow.utils.json import XComDecoder

    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    return json.loads(raw, cls=XComDecoder)


def list_dags(path: str) -> dict[str, Any]:
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3: no example DAGs to leave out

        bag = DagBag(dag_folder=path, safe_mode=False)
    except ImportError:
        from airflow.models.dagbag import DagBag

        bag = DagBag(dag_folder=path, include_examples=False, safe_mode=False)
    return {"dag_ids": sorted(bag.dag_ids), "import_errors": {k: v.strip().splitlines()[-1]
                                                              for k, v in bag.import_errors.items()}}


def serialize(path: str) -> dict[str, Any]:
    """Every DAG of the folder into the metadata DB, as a deployment's DAG processor would have put
    it: cross-DAG lookups read it (ExternalTaskSensor on a task group, TriggerDagRunOperator). Unlike
    `airflow dags reserialize`, this keeps what other folders wrote."""
    from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=path, include_examples=False, safe_mode=False)
    bag.sync_to_db()
    return {"dag_ids": sorted(bag.dag_ids), "import_errors": {k: v.strip().splitlines()[-1]
                                                              for k, v in bag.import_errors.items()}}


def read_run(dag_id: str, logical_date: str) -> dict[str, Any]:
    import pendulum
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    try:
        from airflow.models.xcom import XComModel as XCom  # Airflow 3
    except ImportError:
        from airflow.models.xcom import XCom

    when = pendulum.parse(logical_date)
    with create_session() as session:
        # Airflow 2 names the column execution_date, Airflow 3 logical_date (and keys run ids by wall clock).
        date_col = DagRun.execution_date if hasattr(DagRun, "execution_date") else DagRun.logical_date
        run = session.query(DagRun).filter(DagRun.dag_id == dag_id, date_col == when).one_or_none()
        if run is None:
            return {"dag_id": dag_id, "run_state": None, "task_instances": []}
        tis = session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id,
                                                 TaskInstance.run_id == run.run_id).all()
        xcoms: dict[tuple[str, int], dict[str, Any]] = {}
        # Columns, not XCom objects: an XCom object's value is already the webserver's rendering of it.
        rows = session.query(XCom.task_id, XCom.map_index, XCom.key, XCom.value).filter(
            XCom.dag_id == dag_id, XCom.run_id == run.run_id)
        for task_id, map_index, key, raw in rows:
            xcoms.setdefault((task_id, map_index), {})[key] = _jsonable(_xcom_value(raw))
        out = [
            {
                "dag_id": dag_id,
                "task_id": ti.task_id,
                "map_index": ti.map_index,
                "state": None if ti.state is None else str(ti.state),
                "tries": ti.try_number,
                "xcom": dict(sorted(xcoms.get((ti.task_id, ti.map_index), {}).items())),
            }
            for ti in tis
        ]
        out.sort(key=lambda r: (r["task_id"], r["map_index"]))
        return {"dag_id": dag_id, "run_id": run.run_id, "run_state": str(run.state), "task_instances": out}


def main(argv: list[str]) -> int:
    # Airflow's logging writes to sys.stdout as configured at import: point it at stderr before
    # anything of Airflow is imported, so stdout carries the JSON document alone.
    real_stdout, sys.stdout = sys.stdout, sys.stderr
    if argv[:1] == ["list"] and len(argv) == 2:
        doc = list_dags(argv[1])
    elif argv[:1] == ["serialize"] and len(argv) == 2:
        doc = serialize(argv[1])
    elif argv[:1] == ["read"] and len(argv) == 3:
        doc = read_run(argv[1], argv[2])
    else:
        print("usage: airflow_reader.py list FILE | serialize FOLDER | read DAG_ID LOGICAL_DATE", file=sys.stderr)
        return 2
    print(json.dumps(doc, sort_keys=True), file=real_stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
