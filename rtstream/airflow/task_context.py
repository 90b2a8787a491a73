"""Airflow's task context and XCom for the functions of an imported DAG, one window at a time.

A window is a DAG run: its data interval is the window, `ds` is its start's date, and each task's
return value is its XCom for that window. `AirflowTask` wraps a python source, stage or sink
function that asks for the context (`**context`, `ti`, `ds`, ...) or was given `op_args`,
`op_kwargs` or `templates_dict`, so the function runs unchanged: rtstream calls the wrapper with the
window, the wrapper calls the function the way Airflow's PythonOperator would.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from rtstream.model.window import Window

# The names a PythonOperator's callable may ask for (Airflow 2's context, the common part)
CONTEXT_KEYS = frozenset({
    "ti", "task_instance", "ds", "ds_nodash", "ts", "ts_nodash", "logical_date", "execution_date",
    "data_interval_start", "data_interval_end", "params", "run_id", "dag_run", "dag", "task", "macros",
    "templates_dict", "next_ds", "prev_ds", "inlets", "outlets", "conf", "var",
})
RETURN_VALUE = "return_value"
KEPT_WINDOWS = 256  # windows whose XComs are kept: far more than are in flight at once
_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_TEMPLATE_NAME = re.compile(r"^(ds|ds_nodash|ts|ts_nodash|logical_date|execution_date|data_interval_start|"
                            r"data_interval_end|run_id|params\.\w+|dag\.dag_id|task\.task_id)$")
TEMPLATE_HELP = ("{{ ds }}, {{ ds_nodash }}, {{ ts }}, {{ ts_nodash }}, {{ logical_date }}, "
                 "{{ data_interval_start }}, {{ data_interval_end }}, {{ run_id }}, {{ params.NAME }}")


class XComStore:
    """Each window's XComs: (window, task_id, key) -> value, for the last KEPT_WINDOWS windows."""

    def __init__(self) -> None:
        self._windows: OrderedDict[tuple[int, int, Any], dict[tuple[str, str], Any]] = OrderedDict()

    def of(self, window_id: tuple[int, int, Any]) -> dict[tuple[str, str], Any]:
        found = self._windows.get(window_id)
        if found is None:
            found = self._windows[window_id] = {}
            while len(self._windows) > KEPT_WINDOWS:
                self._windows.popitem(last=False)
        return found


class TaskInstance:
    """The `ti` of a window: xcom_pull / xcom_push within that window, and the run's identity."""

    def __init__(self, dag_id: str, task_id: str, run_id: str, xcoms: dict[tuple[str, str], Any],
                 upstream: list[str]):
        self.dag_id, self.task_id, self.run_id = dag_id, task_id, run_id
        self.try_number = 1
        self._xcoms = xcoms
        self._upstream = upstream

    def xcom_push(self, key: str, value: Any) -> None:
        self._xcoms[(self.task_id, key)] = value

    def xcom_pull(self, task_ids: str | list[str] | None = None, key: str = RETURN_VALUE, **_: Any) -> Any:
        """The value `task_ids` returned (or pushed under `key`) for this window; None if it did not.
        A list of task ids gives a list of values; no task id means the task just upstream."""
        if task_ids is None:
            task_ids = self._upstream[0] if len(self._upstream) == 1 else list(self._upstream)
        if isinstance(task_ids, str):
            return self._xcoms.get((task_ids, key))
        return [self._xcoms.get((t, key)) for t in task_ids]


def _macros() -> SimpleNamespace:
    def ds_add(ds: str, days: int) -> str:
        return (datetime.strptime(ds, "%Y-%m-%d") + timedelta(days=days)).strftime("%Y-%m-%d")

    def ds_format(ds: str, input_format: str, output_format: str) -> str:
        return datetime.strptime(ds, input_format).strftime(output_format)

    return SimpleNamespace(ds_add=ds_add, ds_format=ds_format, datetime=datetime, timedelta=timedelta)


def task_context(dag_id: str, task_id: str, start_ms: int, end_ms: int, xcoms: dict[tuple[str, str], Any],
                 upstream: list[str], params: dict[str, Any]) -> dict[str, Any]:
    """What Airflow passes a PythonOperator's callable for the run whose data interval is [start, end)."""
    start = datetime.fromtimestamp(start_ms / 1000, tz=UTC)
    end = datetime.fromtimestamp(end_ms / 1000, tz=UTC)
    ts = start.isoformat()
    run_id = f"scheduled__{ts}"
    ti = TaskInstance(dag_id, task_id, run_id, xcoms, upstream)
    dag = SimpleNamespace(dag_id=dag_id)
    return {
        "ti": ti, "task_instance": ti, "ds": start.strftime("%Y-%m-%d"), "ds_nodash": start.strftime("%Y%m%d"),
        "ts": ts, "ts_nodash": start.strftime("%Y%m%dT%H%M%S"), "logical_date": start, "execution_date": start,
        "data_interval_start": start, "data_interval_end": end, "params": dict(params), "run_id": run_id,
        "dag_run": SimpleNamespace(run_id=run_id, logical_date=start, data_interval_start=start,
                                   data_interval_end=end, conf={}, dag_id=dag_id),
        "dag": dag, "task": SimpleNamespace(task_id=task_id, dag_id=dag_id), "macros": _macros(),
        "next_ds": end.strftime("%Y-%m-%d"), "prev_ds": (start - (end - start)).strftime("%Y-%m-%d"),
        "conf": {}, "inlets": [], "outlets": [], "templates_dict": None,
    }


def template_problems(value: Any) -> list[str]:
    """The Jinja expressions in `value` (strings, nested in lists and dicts) that rtstream cannot render."""
    if isinstance(value, str):
        return [m.group(0) for m in _TEMPLATE.finditer(value) if not _TEMPLATE_NAME.match(m.group(1))]
    if isinstance(value, dict):
        return [p for v in value.values() for p in template_problems(v)]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in template_problems(v)]
    return []


def render(value: Any, context: dict[str, Any]) -> Any:
    """`{{ ds }}`, `{{ params.x }}` ... rendered in strings, nested in lists and dicts, as Jinja would."""
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            expr = m.group(1)
            if expr.startswith("params."):
                return str(context["params"].get(expr[7:], ""))
            head, _, attr = expr.partition(".")
            found = getattr(context[head], attr) if attr else context[head]
            return str(found)

        return _TEMPLATE.sub(sub, value)
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    return value


def wants_context(fn: Callable[..., Any]) -> bool:
    """Does `fn` take `**context` or one of the context's names, as an Airflow task's callable may?"""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is p.VAR_KEYWORD or p.name in CONTEXT_KEYS for p in params)


class AirflowTask:
    """A task's function, called per window the way Airflow's PythonOperator calls it.

    rtstream calls it with the window (its rows in `window.records`); it calls the function with
    `op_args`, then the context names its signature asks for (all of them for `**kwargs`) and
    `op_kwargs`, with templates rendered for the window. The return value is the task's XCom; a list
    of dicts (or a dict) is also the rows passed on, anything else passes the rows on unchanged.
    """

    def __init__(self, fn: Callable[..., Any], ref: str, *, dag_id: str, task_id: str, store: XComStore,
                 upstream: list[str], seeds: list[str], op_args: list[Any] | None = None,
                 op_kwargs: dict[str, Any] | None = None, templates_dict: dict[str, Any] | None = None,
                 params: dict[str, Any] | None = None):
        self.fn, self.ref = fn, ref
        self.__qualname__ = ref  # what describe() prints
        self.dag_id, self.task_id, self.store = dag_id, task_id, store
        self.upstream = upstream
        self.seeds = seeds  # the sources whose XCom is this window's input (this task comes first)
        self.op_args, self.op_kwargs = list(op_args or []), dict(op_kwargs or {})
        self.templates_dict, self.params = templates_dict, dict(params or {})
        self.is_async = inspect.iscoroutinefunction(fn)
        sig = inspect.signature(fn)
        self._takes_all = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        self._names = [p.name for p in sig.parameters.values()
                       if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)][len(self.op_args):]

    def __eq__(self, other: object) -> bool:  # two loads of one config compare equal (reload)
        return isinstance(other, AirflowTask) and (self.ref, self.task_id, self.op_args, self.op_kwargs,
                                                   self.templates_dict, self.params) == (
            other.ref, other.task_id, other.op_args, other.op_kwargs, other.templates_dict, other.params)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self.ref)

    def arguments(self, start_ms: int, end_ms: int, rows: list[dict[str, Any]] | None,
                  window: Window | None) -> tuple[list[Any], dict[str, Any]]:
        xcoms = self.store.of((start_ms, end_ms, window.key if window is not None else None))
        if rows is not None:
            for source in self.seeds:
                xcoms.setdefault((source, RETURN_VALUE), rows)
        ctx = task_context(self.dag_id, self.task_id, start_ms, end_ms, xcoms, self.upstream, self.params)
        if self.templates_dict is not None:
            ctx["templates_dict"] = render(self.templates_dict, ctx)
        op_kwargs = render(self.op_kwargs, ctx)
        own = {"window": window, "records": rows, "rows": rows}
        kwargs = dict(ctx) if self._takes_all else {}
        for name in self._names:
            if name in op_kwargs:
                continue
            if name in ctx:
                kwargs[name] = ctx[name]
            elif name in own:
                kwargs[name] = own[name]
        kwargs.update(op_kwargs)
        return render(self.op_args, ctx), kwargs

    def finish(self, start_ms: int, end_ms: int, key: Any, result: Any) -> Any:
        """Keep the result as this task's XCom; what the component takes from it (rows or None)."""
        self.store.of((start_ms, end_ms, key))[(self.task_id, RETURN_VALUE)] = result
        if isinstance(result, dict) or (isinstance(result, list) and all(isinstance(r, dict) for r in result)):
            return result
        return None

    def __call__(self, window: Window) -> Any:
        """For a python stage or sink (run in a thread, or awaited when the function is async)."""
        args, kwargs = self.arguments(window.start_ms, window.end_ms, window.records, window)
        if self.is_async:  # components run a plain callable in a worker thread, which has no loop of its own
            return asyncio.run(self._finish_async(window, self.fn(*args, **kwargs)))
        return self.finish(window.start_ms, window.end_ms, window.key, self.fn(*args, **kwargs))

    async def _finish_async(self, window: Window, pending: Any) -> Any:
        return self.finish(window.start_ms, window.end_ms, window.key, await pending)

    def fetch(self, start_ms: int, end_ms: int) -> Any:
        """For a python source: the call for the data interval [start, end); its result is the input."""
        args, kwargs = self.arguments(start_ms, end_ms, None, None)
        return self.fn(*args, **kwargs)
