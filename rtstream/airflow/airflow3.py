"""Where Airflow 3 gives a DAG other results than Airflow 2.10, and how rtstream knows which one a DAG
file was written for: only Airflow 3 has the task SDK, so a file that imports `airflow.sdk` is run with
Airflow 3's semantics (docs/AIRFLOW.md, "Airflow 2 or 3"); any other file with Airflow 2.10's.

What differs, each as Airflow 3.3 does it (its task SDK and the standard provider):
- a branch or short-circuit that skips a downstream task ends its try by raising
  `DownstreamTasksSkipped` (`SkipMixin._set_state_to_skipped`), so its return value is never pushed;
  when it skips nothing (or the task is mapped) the value is kept, as before;
- `LatestOnlyOperator` follows every downstream task in a manual run (`run_type == "manual"`);
- XComs are stored as JSON (serde: a tuple becomes a `__classname__` record) and read back by
  `XComModel.deserialize_value`, which parses a string that holds JSON: what Airflow 3 shows for a
  task's XCom (its API, its metadata DB) is that. The tasks
  themselves pull the value as pushed, in Airflow 3 as here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_SDK_IMPORT = re.compile(rb"^\s*(?:from\s+airflow\.sdk[\s.]|import\s+airflow\.sdk\b)", re.MULTILINE)


def file_major(path: Path) -> int:
    """3 for a DAG file that imports airflow.sdk (the task SDK exists only from Airflow 3), else 2."""
    try:
        return 3 if _SDK_IMPORT.search(path.read_bytes()) else 2
    except OSError:
        return 2


def is_airflow3(dag: Any) -> bool:
    return getattr(dag, "airflow_major", 2) >= 3


def keeps_return_value(dag: Any, ti: Any, skipped: set[str]) -> bool:
    """False where Airflow 3 ends a branch's or short-circuit's try by DownstreamTasksSkipped."""
    if not is_airflow3(dag) or ti.map_index >= 0 or (ti.branch is None and ti.short_circuit is None):
        return True
    return not skipped


def follows_manual_run(dag: Any, dag_run: Any) -> bool:
    """LatestOnlyOperator of Airflow 3 lets a manual run through (Airflow 2.10 follows external_trigger)."""
    return is_airflow3(dag) and getattr(dag_run, "run_type", None) == "manual"


def _serde(value: Any) -> Any:
    """What Airflow 3's serde.serialize stores for lists, dicts and tuples (a tuple is a classname record)."""
    if isinstance(value, tuple):
        return {"__classname__": "builtins.tuple", "__version__": 1, "__data__": [_serde(v) for v in value]}
    if isinstance(value, list):
        return [_serde(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _serde(v) for k, v in value.items()}
    return value


def stored_value(value: Any) -> Any:
    """An XCom value as Airflow 3 reads it back from its metadata DB: stored by serde.serialize, read by
    XComModel.deserialize_value, which json-parses a string and returns anything else as stored."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return _serde(value)


def stored_xcoms(dag: Any, xcoms: dict[str, Any]) -> dict[str, Any]:
    return {k: stored_value(v) for k, v in xcoms.items()} if is_airflow3(dag) else xcoms
