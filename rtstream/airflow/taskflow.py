"""TaskFlow: `@task` (and `.branch`, `.short_circuit`, `.bash`), `@dag`, `@task_group`, `Label`.

A `@task` function called inside a DAG makes a task and returns its XComArg; its arguments (XComArgs
among them) are the task's `op_args` / `op_kwargs`, so upstream results arrive when it runs, as in
Airflow's `DecoratedOperator`. `.override(...)`, `.partial(...)`, `.expand(...)` and
`multiple_outputs` (also inferred from a `-> dict` annotation) work as in Airflow 2.
"""

from __future__ import annotations

import functools
import inspect
import re
import typing
from collections.abc import Callable
from typing import Any

from rtstream.airflow import virtualenv_operator as venv
from rtstream.airflow.bash import BashOperator
from rtstream.airflow.dag_model import DAG, NOTSET, DependencyMixin, TaskGroup, current_dag, current_group
from rtstream.airflow.mapped import MappedOperator, OperatorPartial
from rtstream.airflow.mapped_group import add_mapping
from rtstream.airflow.operator_base import BaseOperator
from rtstream.airflow.operators import BranchMixIn, PythonOperator, ShortCircuitOperator, call_kwargs, unsupported
from rtstream.airflow.sensors import DecoratedSensorOperator
from rtstream.airflow.states import AirflowException
from rtstream.airflow.xcom_arg import XComArg


class DecoratedPythonOperator(PythonOperator):
    """A `@task` function's task: its dict result is also pushed key by key when multiple_outputs is on."""

    def execute(self, context: dict[str, Any]) -> Any:
        result = super().execute(context)
        if self.multiple_outputs and result is not None:
            if not isinstance(result, dict):
                raise AirflowException(f"Returned output was type {type(result)} expected dictionary "
                                       "for multiple_outputs")
            for key, value in result.items():
                context["ti"].xcom_push(key=str(key), value=value)
        return result


class DecoratedBranchOperator(DecoratedPythonOperator, BranchMixIn):
    def execute(self, context: dict[str, Any]) -> Any:
        return self.do_branch(context, super().execute(context))


class DecoratedShortCircuitOperator(ShortCircuitOperator):
    pass


class DecoratedBashOperator(BashOperator):
    """`@task.bash`: the function returns the command, rendered as a template and then run."""

    template_fields = ("env", "cwd")

    def __init__(self, *, python_callable: Callable[..., Any], op_args: Any = None, op_kwargs: Any = None,
                 **kwargs: Any):
        super().__init__(bash_command="", **kwargs)
        self.python_callable, self.op_args, self.op_kwargs = python_callable, list(op_args or []), dict(op_kwargs or {})
        self.link_xcomargs([self.op_args, self.op_kwargs])

    async def async_execute(self, context: dict[str, Any]) -> Any:
        from rtstream.airflow.xcom_arg import resolve_xcomargs

        args = resolve_xcomargs(self.op_args, context)
        merged = {**context, **resolve_xcomargs(self.op_kwargs, context)}
        command = self.python_callable(*args, **call_kwargs(self.python_callable, len(args), merged))
        if not isinstance(command, str) or not command.strip():
            raise AirflowException("The returned value from the TaskFlow callable must be a non-empty string.")
        self.bash_command = self.render_template(command, context)
        return await self.run_command(context)


def _multiple_outputs(fn: Callable[..., Any]) -> bool:
    try:
        ret = typing.get_type_hints(fn).get("return")
    except Exception:  # noqa: BLE001 - an annotation that does not resolve says nothing
        return False
    return ret is dict or typing.get_origin(ret) is dict


def _unique_task_id(task_id: str) -> str:
    """A second call of one `@task` function in a DAG gets `name__1`, `name__2` ..., as in Airflow."""
    dag, group = current_dag(), current_group()
    if dag is None:
        return task_id
    full = group.child_id(task_id) if group is not None else task_id
    if full not in dag.task_dict:
        return task_id
    n = 1
    while (group.child_id(f"{task_id}__{n}") if group else f"{task_id}__{n}") in dag.task_dict:
        n += 1
    return f"{task_id}__{n}"


class TaskDecorator:
    """A `@task` function: calling it in a DAG makes a task and returns its XComArg."""

    def __init__(self, fn: Callable[..., Any], operator_class: type, kwargs: dict[str, Any]):
        self.function, self.operator_class, self.kwargs = fn, operator_class, dict(kwargs)
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]
        if self.kwargs.get("multiple_outputs") is None and operator_class is not DecoratedBashOperator:
            self.kwargs["multiple_outputs"] = _multiple_outputs(fn)

    def _op_kwargs(self) -> dict[str, Any]:
        kwargs = dict(self.kwargs)
        kwargs["task_id"] = _unique_task_id(kwargs.get("task_id") or self.function.__name__)
        return kwargs

    def __call__(self, *args: Any, **kwargs: Any) -> XComArg:
        op_kwargs = self._op_kwargs()
        kind, fail_dagrun = op_kwargs.pop("_setup_teardown", (None, None))
        op = self.operator_class(python_callable=self.function, op_args=args, op_kwargs=kwargs, **op_kwargs)
        if kind == "setup":
            op.as_setup()
        elif kind == "teardown":
            op.as_teardown(on_failure_fail_dagrun=fail_dagrun)
        return XComArg(op)

    def override(self, **kwargs: Any) -> TaskDecorator:
        return TaskDecorator(self.function, self.operator_class, {**self.kwargs, **kwargs})

    def partial(self, *args: Any, **kwargs: Any) -> _TaskPartial:
        return _TaskPartial(self, kwargs)

    def expand(self, **mapped: Any) -> XComArg:
        return _TaskPartial(self, {}).expand(**mapped)

    def expand_kwargs(self, kwargs_list: Any) -> XComArg:
        return _TaskPartial(self, {}).expand_kwargs(kwargs_list)


class _TaskPartial:
    def __init__(self, decorator: TaskDecorator, kwargs: dict[str, Any]):
        self.decorator, self.kwargs = decorator, kwargs

    def _partial(self) -> OperatorPartial:
        d = self.decorator
        return OperatorPartial(d.operator_class, {"python_callable": d.function, "op_kwargs": self.kwargs,
                                                  **d._op_kwargs()}, mapped_into="op_kwargs")

    def expand(self, **mapped: Any) -> XComArg:
        return XComArg(self._partial().expand(**mapped))

    def expand_kwargs(self, kwargs_list: Any) -> XComArg:
        return XComArg(self._partial().expand_kwargs(kwargs_list))


def _decorator(operator_class: type) -> Callable[..., Any]:
    def make(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
        if python_callable is not None:
            return TaskDecorator(python_callable, operator_class, kwargs)
        return lambda fn: TaskDecorator(fn, operator_class, kwargs)

    return make


class _TaskNamespace:
    """`task`, `task.branch`, `task.short_circuit`, `task.bash`, `task.sensor`, `task.virtualenv`,
    `task.external_python` (and their branch forms); the other flavours are refused at load."""

    python = staticmethod(_decorator(DecoratedPythonOperator))
    branch = staticmethod(_decorator(DecoratedBranchOperator))
    short_circuit = staticmethod(_decorator(DecoratedShortCircuitOperator))
    bash = staticmethod(_decorator(DecoratedBashOperator))
    sensor = staticmethod(_decorator(DecoratedSensorOperator))
    virtualenv = staticmethod(_decorator(venv.DecoratedVirtualenvOperator))
    external_python = staticmethod(_decorator(venv.DecoratedExternalPythonOperator))
    branch_virtualenv = staticmethod(_decorator(venv.DecoratedBranchVirtualenvOperator))
    branch_external_python = staticmethod(_decorator(venv.DecoratedBranchExternalPythonOperator))

    def __call__(self, python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
        return self.python(python_callable, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _decorator(unsupported(f"@task.{name}", "airflow.decorators"))


task = _TaskNamespace()


def setup(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
    """`@setup`: a `@task` whose task is a setup task."""
    def wrap(fn: Callable[..., Any]) -> TaskDecorator:
        return TaskDecorator(fn, DecoratedPythonOperator, {**kwargs, "_setup_teardown": ("setup", NOTSET)})

    return wrap(python_callable) if python_callable is not None else wrap


def teardown(python_callable: Callable[..., Any] | None = None, *, on_failure_fail_dagrun: bool = False,
             **kwargs: Any) -> Any:
    """`@teardown`: a `@task` whose task is a teardown (trigger rule all_done_setup_success)."""
    def wrap(fn: Callable[..., Any]) -> TaskDecorator:
        return TaskDecorator(fn, DecoratedPythonOperator,
                             {**kwargs, "_setup_teardown": ("teardown", on_failure_fail_dagrun)})

    return wrap(python_callable) if python_callable is not None else wrap


def dag(dag_id: Any = None, **dag_kwargs: Any) -> Any:
    """`@dag` / `@dag(...)`: calling the function builds its DAG (function defaults become params)."""
    def wrap(fn: Callable[..., Any]) -> Callable[..., DAG]:
        @functools.wraps(fn)
        def factory(*args: Any, **kwargs: Any) -> DAG:
            sig = inspect.signature(fn)
            bound = sig.bind_partial(*args, **kwargs)
            bound.apply_defaults()
            params = {**(dag_kwargs.get("params") or {}),
                      **{k: v for k, v in bound.arguments.items() if v is not inspect.Parameter.empty}}
            the_dag = DAG(dag_id=str(dag_id) if isinstance(dag_id, str) else fn.__name__,
                          **{**dag_kwargs, "params": params})
            with the_dag:
                fn(*bound.args, **bound.kwargs)
            return the_dag

        return factory

    if callable(dag_id):
        fn, dag_id = dag_id, None
        return wrap(fn)
    return wrap


def task_group(python_callable: Callable[..., Any] | None = None, **group_kwargs: Any) -> Any:
    """`@task_group`: the function runs inside a TaskGroup named after it; its return value (a task or
    XComArg) is what `>>` binds to, else the group itself, as in Airflow."""
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def create(group_class: Callable[..., TaskGroup] | None, *args: Any, **kwargs: Any) -> Any:
            group_id = _unique_group_id(group_kwargs.get("group_id") or fn.__name__)
            rest = {k: v for k, v in group_kwargs.items() if k != "group_id"}
            with (group_class or TaskGroup)(group_id, **rest) as group:
                result = fn(*args, **kwargs)
            return result if result is not None else group

        @functools.wraps(fn)
        def factory(*args: Any, **kwargs: Any) -> Any:
            return create(None, *args, **kwargs)

        factory.override = lambda **kw: task_group(fn, **{**group_kwargs, **kw})  # type: ignore[attr-defined]
        add_mapping(factory, fn, create)
        return factory

    return wrap(python_callable) if python_callable is not None else wrap


def _group_ids(group: TaskGroup) -> set[str | None]:
    return {group.group_id} | {g for c in group.children if isinstance(c, TaskGroup) for g in _group_ids(c)}


def _unique_group_id(group_id: str) -> str:
    """A `@task_group` called again gets `name__1`, `name__2` ... (TaskGroup's add_suffix_on_collision:
    the id as given is checked against the DAG's full group ids, as Airflow 2.10 checks it)."""
    dag = current_dag()
    used = _group_ids(dag.task_group) if dag is not None else set()
    if group_id not in used:
        return group_id
    base = re.split(r"__\d+$", group_id)[0]
    suffixes = sorted(int(re.split(r"^.+__", u)[1]) for u in used if u is not None and re.match(rf"^{re.escape(base)}__\d+$", u))
    return f"{base}__{suffixes[-1] + 1}" if suffixes else f"{group_id}__1"


class Label(DependencyMixin):
    """An edge label (`a >> Label("why") >> b`): only the dependency it carries matters to a run."""

    def __init__(self, label: str):
        self.label = label
        self._upstream: list[Any] = []

    def set_upstream(self, other: Any) -> None:
        self._upstream.append(other)

    def update_relative(self, upstream: Any) -> None:
        self._upstream.append(upstream)

    def set_downstream(self, other: Any) -> None:
        for up in self._upstream:
            up.set_downstream(other) if not isinstance(up, list) else [u.set_downstream(other) for u in up]


__all__ = ["BaseOperator", "MappedOperator", "Label", "dag", "task", "task_group"]
