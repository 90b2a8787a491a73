"""Jinja templates in templated fields, as Airflow renders them: a sandboxed environment with
StrictUndefined (a NativeEnvironment under `render_template_as_native_obj`), the DAG's folder and
`template_searchpath` as the loader's path (a value ending in a `template_ext` is a template file),
`user_defined_macros` / `user_defined_filters`, and XComArgs resolved before rendering.
"""

from __future__ import annotations

import os
from typing import Any

import jinja2
import jinja2.nativetypes
import jinja2.sandbox

from rtstream.airflow.xcom_arg import XComArg

_FILTERS = {
    "ds": lambda d: d.strftime("%Y-%m-%d"), "ds_nodash": lambda d: d.strftime("%Y%m%d"),
    "ts": lambda d: d.isoformat(), "ts_nodash": lambda d: d.strftime("%Y%m%dT%H%M%S"),
    "ts_nodash_with_tz": lambda d: d.isoformat().replace("-", "").replace(":", ""),
}


def environment(dag: Any) -> jinja2.Environment:
    paths = [os.path.dirname(dag.fileloc) or ".", *dag.template_searchpath]
    options: dict[str, Any] = {"undefined": jinja2.StrictUndefined, "extensions": ["jinja2.ext.do"],
                               "loader": jinja2.FileSystemLoader(paths), "cache_size": 0}
    env: jinja2.Environment
    if dag.render_template_as_native_obj:
        env = jinja2.nativetypes.NativeEnvironment(**options)
    else:
        env = jinja2.sandbox.SandboxedEnvironment(**options)
    env.filters.update(_FILTERS)
    env.filters.update(dag.user_defined_filters)
    return env


def render(value: Any, context: dict[str, Any], env: jinja2.Environment, exts: tuple[str, ...] = ()) -> Any:
    """`value` with every string in it rendered (nested in lists, tuples, sets and dicts)."""
    if isinstance(value, XComArg):
        return value.resolve(context)
    if isinstance(value, str):
        if exts and value.endswith(tuple(exts)):
            return env.get_template(value).render(context)
        return env.from_string(value).render(context)
    if isinstance(value, dict):
        return {k: render(v, context, env, exts) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return type(value)(render(v, context, env, exts) for v in value)
    return value


def render_fields(task: Any, context: dict[str, Any], env: jinja2.Environment) -> None:
    """Render `task`'s template_fields in place (the run renders a copy of the DAG's task)."""
    jinja_context = {**getattr(task.dag, "user_defined_macros", {}), **context}
    for name in task.template_fields:
        if hasattr(task, name):
            setattr(task, name, render(getattr(task, name), jinja_context, env, tuple(task.template_ext)))
    task.render_template = lambda content, ctx: render(content, {**jinja_context, **ctx}, env, ())
