"""Airflow 3 activates an asset only when no other active asset has its name or its URI (the
`asset_active` table is unique on each): of `Asset(name="a", uri="s3://x")` and `Asset("s3://x")` in
one deployment, the first its DAG processor stores is active, and a task of the other fails at start
(AirflowInactiveAssetInInletOrOutletException). Which one is first depends on the order Airflow parsed
the files in, which rtstream cannot know: a DAG (written for Airflow 3) with a task whose inlet or
outlet conflicts so with an asset of another DAG of the bag is refused, with both assets named.

Airflow 2.10 has no such rule (a Dataset is its URI): DAG files for it are not checked."""

from __future__ import annotations

from typing import Any

from rtstream.airflow.airflow3 import is_airflow3
from rtstream.airflow.assets import Asset


def _assets(dag: Any) -> list[tuple[str, Asset]]:
    return [(t.task_id, a) for t in dag.tasks for a in [*getattr(t, "inlets", []), *getattr(t, "outlets", [])]
            if isinstance(a, Asset)]


def asset_conflicts(dags: dict[str, Any], dag: Any) -> list[str]:
    """`task X: reason` for each asset of `dag`'s tasks that shares a name or a URI with another asset."""
    if not is_airflow3(dag):
        return []
    seen: dict[tuple[str, str], str] = {}  # (name, uri) -> where it is used
    for other in dags.values():
        if is_airflow3(other):
            for task_id, a in _assets(other):
                seen.setdefault((a.name, a.uri), f"{other.dag_id}.{task_id} ({other.fileloc})")
    out = []
    for task_id, a in _assets(dag):
        clash = next(((key, where) for key, where in seen.items()
                      if key != (a.name, a.uri) and (key[0] == a.name or key[1] == a.uri)), None)
        if clash is not None:
            (name, uri), where = clash
            out.append(f"task {task_id}: Asset(name={a.name!r}, uri={a.uri!r}) shares its "
                       f"{'name' if name == a.name else 'URI'} with Asset(name={name!r}, uri={uri!r}) of {where}: "
                       "Airflow 3 activates only one of them (whichever it stores first) and fails the tasks of "
                       "the other; give each asset one name and one URI")
    return out
