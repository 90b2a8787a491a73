"""The Airflow keys of a python source, stage or sink, and the binding of its function to a task context.

`op_args`, `op_kwargs`, `templates_dict`, `params` and `task_id` sit next to `call`, as they sat on
the PythonOperator. They are taken out of the section before its own model sees it (the component
knows nothing of Airflow); a function that asks for the context, or was given any of these keys, is
then wrapped in an AirflowTask that every python component calls like any function of the window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtstream.airflow.task_context import TEMPLATE_HELP, AirflowTask, XComStore, template_problems, wants_context

AIRFLOW_KEYS = ("op_args", "op_kwargs", "templates_dict", "params", "task_id")
_SHAPES: dict[str, type] = {"op_args": list, "op_kwargs": dict, "templates_dict": dict, "params": dict,
                            "task_id": str}


def take_airflow_keys(body: dict[str, Any], where: str, problems: list[tuple[str, str]]) -> dict[str, Any]:
    """Remove the Airflow keys from a `type = "python"` section; returns them, checked."""
    if body.get("type") != "python":
        return {}
    found = {}
    for key in AIRFLOW_KEYS:
        if key not in body:
            continue
        value = body.pop(key)
        if not isinstance(value, _SHAPES[key]):
            problems.append((f"{where}.{key}", f"must be a {_SHAPES[key].__name__} (got {value!r:.80})"))
            continue
        bad = template_problems(value)
        if bad:
            problems.append((f"{where}.{key}", f"cannot render {', '.join(bad)}: rtstream renders {TEMPLATE_HELP} "
                                               "(no filters or other macros)"))
            continue
        found[key] = value
    return found


def bind(fn: Any, ref: str, *, name: str, kind: str, dag_id: str, flow: Any, keys: dict[str, Any],
         store: XComStore, stage_types: dict[str, str], task_ids: dict[str, str]) -> Any:
    """`fn` as the component will call it: an AirflowTask when it needs one, else unchanged."""
    if not keys and not wants_context(fn):
        return fn
    if kind == "source":
        upstream: list[str] = []
        seeds: list[str] = []
    else:
        before = flow.stages[:flow.stages.index(name)] if kind == "stage" else list(flow.stages)
        upstream = [task_ids[before[-1]]] if before else [task_ids[s] for s in flow.sources]
        # the first task to see the window's records stands in for the sources' XCom
        seeds = [task_ids[s] for s in flow.sources] if all(stage_types.get(s) == "map" for s in before) else []
    return AirflowTask(fn, ref, dag_id=dag_id, task_id=keys.get("task_id", name), store=store, upstream=upstream,
                       seeds=seeds, op_args=keys.get("op_args"), op_kwargs=keys.get("op_kwargs"),
                       templates_dict=keys.get("templates_dict"), params=keys.get("params"))


def bind_python_calls(root: Any, flow: Any, components: dict[str, Any], search_dirs: list[Path],
                      problems: list[tuple[str, str]], airflow_keys: dict[str, dict[str, Any]]) -> None:
    """Import every `call`, and give the python components of an Airflow DAG their task context."""
    from rtstream.airflow import stand_in as airflow_shim
    from rtstream.airflow.callables import load_callable
    from rtstream.config.problems import import_hint

    store = XComStore()  # one per load: the tasks of one pipeline share their XComs
    stage_types = {n: getattr(components[n].cls, "type_name", "") for n in flow.stages}
    task_ids = {n: airflow_keys.get(n, {}).get("task_id", n) for n in components}
    for section, names in (("sources", flow.sources), ("stages", flow.stages), ("sinks", flow.sinks)):
        for name in names:
            comp = components[name]
            call = getattr(comp.config, "call", None)
            if call is None:
                continue
            airflow_shim.prepare_import(call, search_dirs)  # a DAG file's top level runs once, not twice
            try:
                fn = load_callable(call, search_dirs)
            except ValueError as exc:
                problems.append((f"{section}.{name}.call", import_hint(str(exc), call, search_dirs)))
                continue
            if getattr(comp.cls, "type_name", "") == "python":
                ref = call if isinstance(call, str) else getattr(fn, "__qualname__", "?")
                bound = bind(fn, ref, name=name, kind=comp.kind, dag_id=root.pipeline.name, flow=flow,
                             keys=airflow_keys.get(name, {}), store=store, stage_types=stage_types, task_ids=task_ids)
                comp.config.call = bound  # type: ignore[attr-defined]
