"""Dynamic task mapping: `Operator.partial(...).expand(...)` (and a `@task`'s), a task expanded at run
time into one task instance per value, or per combination of values (Airflow's cross product)."""

from __future__ import annotations

from typing import Any

from rtstream.airflow.dag_model import DependencyMixin, current_dag, current_group
from rtstream.airflow.expand_input import combinations as combinations  # re-exported
from rtstream.airflow.expand_input import count, value_at
from rtstream.airflow.operator_base import BaseOperator, with_default_args
from rtstream.airflow.states import TriggerRule
from rtstream.airflow.xcom_arg import XComArg, find_xcomargs


class OperatorPartial:
    def __init__(self, cls: type, kwargs: dict[str, Any], mapped_into: str | None = None):
        self.cls, self.kwargs, self.mapped_into = cls, kwargs, mapped_into

    def expand(self, **mapped: Any) -> MappedOperator:
        return MappedOperator(self.cls, self.kwargs, mapped, self.mapped_into)

    def expand_kwargs(self, kwargs_list: Any) -> MappedOperator:
        """One task instance per dict of a list (or an XComArg giving one), as Airflow's expand_kwargs."""
        return MappedOperator(self.cls, self.kwargs, {}, self.mapped_into, kwargs_list=kwargs_list)


class MappedOperator(DependencyMixin):
    """A task expanded at run time into one task instance per value (or combination of values)."""

    is_mapped = True

    def __init__(self, cls: type, partial_kwargs: dict[str, Any], mapped: dict[str, Any], mapped_into: str | None,
                 kwargs_list: Any = None):
        kwargs = with_default_args(cls, dict(partial_kwargs))
        self.cls, self.mapped, self.mapped_into, self.kwargs_list = cls, mapped, mapped_into, kwargs_list
        group = kwargs.pop("task_group", None) or current_group()
        dag = kwargs.pop("dag", None) or (group.dag if group is not None else None) or current_dag()
        self.task_id = group.child_id(kwargs["task_id"]) if group is not None else kwargs["task_id"]
        self.kwargs = {**kwargs, "task_id": self.task_id}
        self.trigger_rule = str(kwargs.get("trigger_rule", TriggerRule.ALL_SUCCESS))
        self.runs_natively, self.unsupported_reason = cls.runs_natively, cls.unsupported_reason  # type: ignore[attr-defined]
        self.upstream_task_ids: set[str] = set()
        self.downstream_task_ids: set[str] = set()
        self.task_group, self.dag = group, dag
        if dag is not None:
            dag.add_task(self)
            if group is not None and group.dag is dag:
                group.children.append(self)
        for value in [*mapped.values(), *self.kwargs.values(), kwargs_list]:
            for arg in find_xcomargs(value):
                arg.operator.set_downstream(self)

    def __repr__(self) -> str:
        return f"<Mapped({self.cls.__name__}): {self.task_id}>"

    @property
    def dag_id(self) -> str:
        return self.dag.dag_id if self.dag else "adhoc_airflow"

    def dep_roots(self) -> list[Any]:
        return [self]

    dep_leaves = dep_roots
    add_edge_to = BaseOperator.add_edge_to

    @property
    def output(self) -> XComArg:
        return XComArg(self)

    def expand_into(self, context: dict[str, Any]) -> list[BaseOperator]:
        """One operator per combination of the mapped values (Airflow's cross product), in map_index order.
        An instance whose values cannot be computed (a `.map()` function raised) fails, or skips on
        AirflowSkipException, when it runs, as in Airflow; the others run."""
        out: list[BaseOperator] = []
        for i in range(count(self.mapped, self.kwargs_list, context)):
            try:
                one = value_at(self.mapped, self.kwargs_list, context, i)
            except Exception as exc:  # noqa: BLE001 - that instance's own failure, raised when it runs
                op: BaseOperator = _Unexpandable(task_id=self.task_id, error=exc,
                                                 retries=self.kwargs.get("retries", 0),
                                                 trigger_rule=self.trigger_rule)
            else:
                kwargs = dict(self.kwargs)
                if self.mapped_into:
                    kwargs[self.mapped_into] = {**(kwargs.get(self.mapped_into) or {}), **one}
                else:
                    kwargs.update(one)
                op = self.cls(**kwargs)
            op._dag = self.dag  # the DAG's, without adding it: the DAG holds the mapped task
            out.append(op)
        return out


class _Unexpandable(BaseOperator):
    """A mapped instance whose values raised: each try raises it again."""

    def __init__(self, *, error: Exception, **kwargs: Any):
        super().__init__(**kwargs)
        self.error = error

    def execute(self, context: dict[str, Any]) -> Any:
        raise self.error
