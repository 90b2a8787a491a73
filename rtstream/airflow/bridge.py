"""An operator rtstream does not run natively, run through the real Airflow's own `execute(context)`.

The task is rtstream's (its id, retries, trigger rule, timeout, dependencies and XComArgs are
rtstream's DAG model); it holds the real operator, built from the same arguments (the DAG's and
groups' `default_args` passed on as `default_args`). Each try renders the real operator's
`template_fields` with rtstream's Jinja (rtstream.airflow.templating, on the task's copy), copies
them onto a copy of the real operator and calls its `pre_execute`, `execute` and `post_execute` with
rtstream's context (ds, ts, ti whose xcom_push/xcom_pull are rtstream's XCom, dag_run, params ...),
in a thread as any sync task. The return value is the XCom. Airflow's skip and fail exceptions mean
what they mean in Airflow; a deferral or a reschedule cannot happen without Airflow's triggerer and
scheduler, and fails the try saying so.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

from rtstream.airflow import real_airflow
from rtstream.airflow.dag_model import current_dag, current_group
from rtstream.airflow.operator_base import BaseOperator
from rtstream.airflow.states import AirflowException, AirflowFailException, AirflowSkipException

_bridged: dict[type, type] = {}
_in_bridge = threading.local()  # set while AirflowOperator builds its real operator
_loading = False  # DAG files are being loaded (a real operator built now must be one of ours)
_OWN = {p.name for p in inspect.signature(BaseOperator.__init__).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}


def is_real_operator(cls: type) -> bool:
    return issubclass(cls, real_airflow.real_base_operator())


class AirflowOperator(BaseOperator):
    """rtstream's task around a real Airflow operator (see the module's doc)."""

    real_class: ClassVar[type]
    runs_through_airflow: ClassVar[bool] = True

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "real_class" not in cls.__dict__:
            # A DAG file's subclass of a real operator overrides methods of the real class, which the
            # real instance this task holds would not have: refused rather than run differently.
            cls.runs_natively = False
            cls.unsupported_reason = (f"{cls.__name__} subclasses Airflow's {cls.real_class.__name__}; a subclass "
                                      "of a real Airflow operator defined in a DAG file is not run through Airflow yet")

    def __init__(self, **kwargs: Any):
        dag = kwargs.get("dag") or current_dag()
        group = kwargs.get("task_group") or current_group()
        defaults = {**(dag.default_args if dag else {}), **(group.all_defaults() if group else {})}
        super().__init__(**{k: v for k, v in kwargs.items() if k in _OWN})
        real_kwargs = {k: v for k, v in kwargs.items() if k not in ("dag", "task_group", "task_id")}
        if type(self).runs_natively:
            _in_bridge.on = True
            try:
                self.real = self.real_class(task_id=self.task_id, default_args=defaults, **real_kwargs)
            finally:
                _in_bridge.on = False
            for name in self.template_fields:  # rendered on rtstream's copy of the task each try
                setattr(self, name, getattr(self.real, name, None))

    def execute(self, context: dict[str, Any]) -> Any:
        real = copy.copy(self.real)
        real._lock_for_execution = True  # Airflow's own flag: no re-linking of XComArgs on assignment
        for name in self.template_fields:
            setattr(real, name, getattr(self, name))
        real.render_template = self.render_template
        errors = real_airflow.real_exceptions()
        sentinel = {f"{type(real).__name__}__sentinel": real_airflow.execution_sentinel()}
        try:
            real.pre_execute(context=context)
            result = real.execute(context, **sentinel)
            real.post_execute(context=context, result=result)
        except errors.AirflowSkipException as exc:
            raise AirflowSkipException(str(exc)) from exc
        except errors.AirflowFailException as exc:
            raise AirflowFailException(str(exc)) from exc
        except errors.TaskDeferred as exc:
            raise AirflowException(f"{type(real).__name__} deferred itself (deferrable=True): rtstream has no "
                                   "triggerer; run it with deferrable=False") from exc
        except errors.AirflowRescheduleException as exc:
            raise AirflowException(f"{type(real).__name__} asked to be rescheduled (mode='reschedule'): "
                                   "rtstream runs sensors in mode='poke'") from exc
        return result


# Real operators whose execute reads or writes Airflow's metadata database (other DAGs' runs and task
# instances), which rtstream does not have: refused rather than failing on a missing table at run time.
NEEDS_METADATA_DB = {"TriggerDagRunOperator", "ExternalTaskSensor", "ExternalTaskMarker", "SubDagOperator"}


@contextlib.contextmanager
def loading_dag_files() -> Iterator[None]:
    """While DAG files load, a real operator built other than as a task of rtstream's DAG (by a package
    outside the DAG folder that imports the real `airflow`) raises: it would be a task silently left out."""
    global _loading
    real_base: Any = real_airflow.real_base_operator()
    if not getattr(real_base.__init__, "_rtstream_guard", False):
        real_init = real_base.__init__

        @functools.wraps(real_init)
        def guarded(self: Any, *args: Any, **kwargs: Any) -> None:
            if _loading and not getattr(_in_bridge, "on", False):
                raise AirflowException(
                    f"{type(self).__name__}(task_id={kwargs.get('task_id')!r}) was built with the real Airflow's "
                    f"classes (from {type(self).__module__}), outside the DAG folder's imports: it would not be a "
                    "task of rtstream's DAG; import the operator in the DAG file or a module beside it")
            real_init(self, *args, **kwargs)

        guarded._rtstream_guard = True  # type: ignore[attr-defined]
        real_base.__init__ = guarded
    _loading = True
    try:
        yield
    finally:
        _loading = False


def bridged(cls: type) -> type:
    """The rtstream task class that runs the real operator class `cls`."""
    if cls not in _bridged:
        attrs: dict[str, Any] = {
            "real_class": cls, "template_fields": tuple(getattr(cls, "template_fields", ())),
            "template_ext": tuple(getattr(cls, "template_ext", ())), "__module__": cls.__module__,
            "__qualname__": cls.__qualname__, "__doc__": cls.__doc__}
        if needs := [c.__name__ for c in cls.__mro__ if c.__name__ in NEEDS_METADATA_DB]:
            attrs["runs_natively"] = False
            attrs["unsupported_reason"] = (f"Airflow's {needs[0]} reads and writes Airflow's metadata database "
                                           "(other DAGs' runs), which rtstream does not have")
        _bridged[cls] = type(cls.__name__, (AirflowOperator,), attrs)
    return _bridged[cls]


def how_it_runs(task: Any) -> str:
    """`native`, `airflow: <Operator>.execute (apache-airflow X)` or `REFUSED: <reason>`, for `dags list`."""
    cls = task.cls if task.is_mapped else type(task)
    if not task.runs_natively:
        return f"REFUSED: {task.unsupported_reason}"
    if getattr(cls, "runs_through_airflow", False):
        return f"airflow: {cls.__name__}.execute (apache-airflow {real_airflow.version()})"
    return "native"
