"""`BaseOperator`, as a DAG file builds it (XComArg in xcom_arg.py, `.partial(...).expand(...)` in mapped.py).

Like Airflow's `BaseOperatorMeta`, every subclass's `__init__` is wrapped so that `default_args`
(the DAG's, its task groups', the operator's own) fill the parameters the operator's `__init__`
chain names and the caller left out; a task registers with the DAG and group it was made in, and
the XComArgs in its templated fields and arguments make their tasks its upstream.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, ClassVar

from rtstream.airflow.dag_model import (
    DAG,
    NOTSET,
    DependencyMixin,
    TaskGroup,
    as_timedelta,
    current_dag,
    current_group,
)
from rtstream.airflow.setup_teardown import SetupTeardownScope, mark_setup, mark_teardown
from rtstream.airflow.states import AirflowException, TriggerRule
from rtstream.airflow.xcom_arg import RETURN_VALUE, XComArg, find_xcomargs


def _accepted_names(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        init = getattr(init, "__wrapped__", init)
        try:
            names |= {p.name for p in inspect.signature(init).parameters.values()
                      if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        except (TypeError, ValueError):
            continue
    return names - {"self"}


def with_default_args(cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` with the DAG's, the group's and the operator's `default_args` filled in, as Airflow does."""
    dag = kwargs.get("dag") or current_dag()
    group = kwargs.get("task_group") or current_group()
    defaults = {**(dag.default_args if dag else {}), **(group.all_defaults() if group else {}),
                **(kwargs.pop("default_args", None) or {})}
    if "params" in defaults and "params" in kwargs:  # params merge rather than replace
        kwargs["params"] = {**defaults["params"], **kwargs["params"]}
    accepted = _accepted_names(cls)
    for name, value in defaults.items():
        if name in accepted and name not in kwargs:
            kwargs[name] = value
    return kwargs


class BaseOperator(DependencyMixin):
    """An Airflow task: rtstream calls its `execute(context)` (in a thread unless it is a coroutine)."""

    template_fields: ClassVar[tuple[str, ...] | list[str]] = ()
    template_ext: ClassVar[tuple[str, ...] | list[str]] = ()
    template_fields_renderers: ClassVar[dict[str, str]] = {}
    ui_color = "#fff"
    is_mapped = False
    runs_natively: ClassVar[bool] = True  # False: refused at load (unsupported_reason says why)
    unsupported_reason: ClassVar[str] = ""
    shallow_copy_attrs: ClassVar[tuple[str, ...]] = ()
    is_setup = is_teardown = on_failure_fail_dagrun = False

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_fills_defaults", False):
            cls.__init__ = _filling_defaults(init)  # type: ignore[method-assign]

    def __init__(self, task_id: str, owner: str = "airflow", retries: int | None = 0,
                 retry_delay: timedelta | float = timedelta(seconds=300), retry_exponential_backoff: bool = False,
                 max_retry_delay: timedelta | float | None = None, execution_timeout: timedelta | float | None = None,
                 trigger_rule: str = TriggerRule.ALL_SUCCESS, params: dict[str, Any] | None = None,
                 dag: DAG | None = None, task_group: TaskGroup | None = None, do_xcom_push: bool = True,
                 multiple_outputs: bool = False, depends_on_past: bool = False, wait_for_downstream: bool = False,
                 on_failure_callback: Any = None, on_success_callback: Any = None, on_retry_callback: Any = None,
                 on_execute_callback: Any = None, on_skipped_callback: Any = None,
                 ignore_first_depends_on_past: bool = True,  # Airflow's ignore_first_depends_on_past_by_default
                 start_date: Any = None, end_date: Any = None, pool: str | None = None, queue: str | None = None,
                 priority_weight: int = 1, sla: Any = None, doc_md: str | None = None, email: Any = None,
                 email_on_failure: bool = True, email_on_retry: bool = True, inlets: Any = None, outlets: Any = None,
                 **other: Any):
        if not isinstance(task_id, str) or not task_id:
            raise AirflowException(f"task_id must be a non-empty string, got {task_id!r}")
        self.owner, self.retries = owner, int(retries or 0)
        self.retry_delay = as_timedelta(retry_delay) or timedelta(0)
        self.retry_exponential_backoff = retry_exponential_backoff
        self.max_retry_delay = as_timedelta(max_retry_delay)
        self.execution_timeout = as_timedelta(execution_timeout)
        rule = str(trigger_rule.value if isinstance(trigger_rule, TriggerRule) else trigger_rule)
        if rule not in {r.value for r in TriggerRule}:
            raise AirflowException(f"task {task_id!r}: trigger_rule {rule!r} is not one of Airflow's trigger rules")
        self.trigger_rule = rule
        self.params = dict(params or {})
        self.do_xcom_push, self.multiple_outputs = do_xcom_push, multiple_outputs
        self.depends_on_past, self.wait_for_downstream = depends_on_past, wait_for_downstream
        self.on_failure_callback, self.on_success_callback = on_failure_callback, on_success_callback
        self.on_retry_callback, self.on_execute_callback = on_retry_callback, on_execute_callback
        self.on_skipped_callback, self.ignore_first_depends_on_past = on_skipped_callback, ignore_first_depends_on_past
        self.depends_on_past = depends_on_past or wait_for_downstream  # Airflow: wait_for_downstream implies it
        self.start_date, self.end_date, self.pool, self.queue = start_date, end_date, pool, queue
        self.priority_weight, self.sla, self.doc_md = priority_weight, sla, doc_md
        self.other = other
        self.inlets = list(inlets) if isinstance(inlets, (list, tuple)) else ([] if inlets is None else [inlets])
        self.outlets = list(outlets) if isinstance(outlets, (list, tuple)) else ([] if outlets is None else [outlets])
        self.upstream_task_ids: set[str] = set()
        self.downstream_task_ids: set[str] = set()
        group = task_group or current_group()
        self.task_group = group
        self.task_id = group.child_id(task_id) if group is not None else task_id
        self._dag: DAG | None = None
        self.dag = dag or (group.dag if group is not None else None) or current_dag()
        if group is not None and self._dag is not None and group.dag is self._dag:
            group.children.append(self)

    @property
    def dag(self) -> DAG | None:
        return self._dag

    @dag.setter
    def dag(self, dag: DAG | None) -> None:
        if dag is not None and self._dag is not dag:
            self._dag = dag
            dag.add_task(self)

    def __repr__(self) -> str:
        return f"<Task({type(self).__name__}): {self.task_id}>"

    @property
    def dag_id(self) -> str:
        return self._dag.dag_id if self._dag else "adhoc_airflow"

    def dep_roots(self) -> list[Any]:
        return [self]

    dep_leaves = dep_roots

    def add_edge_to(self, other: Any) -> None:
        if other.task_id == self.task_id:
            raise AirflowException(f"task {self.task_id!r} cannot depend on itself")
        if self.dag is not None and other.dag is None:
            other.dag = self.dag
        elif other.dag is not None and self.dag is None:
            self.dag = other.dag
        self.downstream_task_ids.add(other.task_id)
        other.upstream_task_ids.add(self.task_id)

    @property
    def output(self) -> XComArg:
        return XComArg(self)

    def as_setup(self) -> BaseOperator:
        mark_setup(self)
        return self

    def as_teardown(self, *, setups: Any = NOTSET, on_failure_fail_dagrun: Any = NOTSET) -> BaseOperator:
        mark_teardown(self, setups, on_failure_fail_dagrun)
        return self

    def __enter__(self) -> BaseOperator:  # `with teardown_task:` (setup_teardown.SetupTeardownScope)
        if not self.is_teardown:
            raise AirflowException("Only a teardown task can be used as a context manager")
        self.__dict__.setdefault("_scopes", []).append(SetupTeardownScope([self]).__enter__())
        return self

    def __exit__(self, *exc: Any) -> None:
        self.__dict__["_scopes"].pop().__exit__(*exc)

    def link_xcomargs(self, values: Iterable[Any]) -> None:
        """Tasks whose XComArgs this task takes become its upstream, as in Airflow."""
        for value in values:
            for arg in find_xcomargs(value):
                arg.operator.set_downstream(self)

    def execute(self, context: dict[str, Any]) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no execute()")

    def xcom_push(self, context: dict[str, Any], key: str, value: Any) -> None:
        context["ti"].xcom_push(key=key, value=value)

    def xcom_pull(self, context: dict[str, Any], task_ids: Any = None, key: str = RETURN_VALUE, **kw: Any) -> Any:
        return context["ti"].xcom_pull(task_ids=task_ids, key=key, **kw)

    def render_template(self, content: Any, context: dict[str, Any]) -> Any:
        return content  # a run sets the rendering one (templating.render_fields) before execute

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        from rtstream.airflow.mapped import OperatorPartial

        return OperatorPartial(cls, kwargs)


def _filling_defaults(init: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(init)
    def wrapper(self: BaseOperator, *args: Any, **kwargs: Any) -> None:
        outermost = not self.__dict__.get("_filling", False)
        if outermost:
            self.__dict__["_filling"] = True
            kwargs = with_default_args(type(self), kwargs)
        init(self, *args, **kwargs)
        if outermost:
            del self.__dict__["_filling"]
            self.link_xcomargs([getattr(self, f, None) for f in self.template_fields])

    wrapper._fills_defaults = True  # type: ignore[attr-defined]
    return wrapper


BaseOperator.__init__ = _filling_defaults(BaseOperator.__init__)  # type: ignore[method-assign]
