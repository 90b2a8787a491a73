"""Airflow's expand inputs (`DictOfListsExpandInput`, `ListOfDictsExpandInput`) read lazily: how many
instances a mapped task (or task group) has, and the values of instance i alone. Airflow computes
an instance's values when that instance runs, so a `.map()` function runs once per instance and an
`AirflowSkipException` it raises skips that instance only; `value_at` keeps that."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rtstream.airflow.states import AirflowException
from rtstream.airflow.xcom_arg import resolve_xcomargs


def _sequence(key: str, value: Any) -> Sequence[Any]:
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return value
    raise AirflowException(f"expand({key}=...) needs a list or dict, got {type(value).__name__}")


def _resolved(mapped: dict[str, Any], kwargs_list: Any, context: dict[str, Any]) -> Any:
    if kwargs_list is not None:
        rows = resolve_xcomargs(kwargs_list, context)
        if not isinstance(rows, Sequence) or isinstance(rows, (str, bytes)):
            raise AirflowException(f"expand_kwargs() needs a list of dicts, got {type(rows).__name__}")
        return rows
    return {k: _sequence(k, resolve_xcomargs(v, context)) for k, v in mapped.items()}


def count(mapped: dict[str, Any], kwargs_list: Any, context: dict[str, Any]) -> int:
    values = _resolved(mapped, kwargs_list, context)
    if kwargs_list is not None:
        return len(values)
    total = 1
    for seq in values.values():
        total *= len(seq)
    return total


def value_at(mapped: dict[str, Any], kwargs_list: Any, context: dict[str, Any], index: int) -> dict[str, Any]:
    """Instance `index`'s values: the index-th dict, or the index-th combination of the cross product
    (the last key varying fastest, as itertools.product)."""
    values = _resolved(mapped, kwargs_list, context)
    if kwargs_list is not None:
        row = values[index]
        if not isinstance(row, dict):
            raise AirflowException(f"expand_kwargs() needs a list of dicts, got {type(row).__name__} at {index}")
        return resolve_xcomargs(dict(row), context)  # type: ignore[no-any-return]
    out: dict[str, Any] = {}
    for key in reversed(list(values)):
        index, at = divmod(index, len(values[key]))
        out[key] = values[key][at]
    return {k: out[k] for k in values}


def combinations(mapped: dict[str, Any], kwargs_list: Any, context: dict[str, Any]) -> list[dict[str, Any]]:
    return [value_at(mapped, kwargs_list, context, i) for i in range(count(mapped, kwargs_list, context))]
