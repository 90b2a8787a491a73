"""What `import airflow...` gives a DAG file when Airflow is not installed: rtstream's own DAG model.

Any Airflow 1.10, 2.x or 3.x module path resolves (`airflow.operators.python`,
`airflow.operators.python_operator`, `airflow.providers.standard.operators.bash`, `airflow.decorators`,
`airflow.sdk`, `airflow.models.baseoperator` ...): a name rtstream provides is the same object under
every path; any other name is a placeholder that is refused when a DAG uses it as an operator and
raises when anything else calls it, so nothing is silently skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from rtstream.airflow import assets, states
from rtstream.airflow.asset_decorator import asset
from rtstream.airflow.bash import BashOperator
from rtstream.airflow.branch_operators import NAMES as BRANCH_OPERATORS
from rtstream.airflow.context import Variable
from rtstream.airflow.dag_model import DAG, Param, TaskGroup, chain, cross_downstream
from rtstream.airflow.external_sensors import NAMES as EXTERNAL_SENSORS
from rtstream.airflow.operator_base import BaseOperator
from rtstream.airflow.operators import (
    BaseBranchOperator,
    BranchMixIn,
    BranchPythonOperator,
    DummyOperator,
    EmptyOperator,
    PythonOperator,
    ShortCircuitOperator,
    SkipMixin,
    unsupported,
)
from rtstream.airflow.run_support import get_current_context
from rtstream.airflow.sensors import NAMES as SENSORS
from rtstream.airflow.state_store import NEVER_EXPIRE
from rtstream.airflow.subdag import SubDagOperator, example_subdag
from rtstream.airflow.taskflow import Label, dag, setup, task, task_group, teardown
from rtstream.airflow.trigger_operators import NAMES as TRIGGER_OPERATORS
from rtstream.airflow.venv_check import is_venv_installed
from rtstream.airflow.virtualenv_operator import NAMES as VENV_OPERATORS
from rtstream.airflow.watchers import NAMES as WATCHERS
from rtstream.airflow.xcom_arg import XComArg

AIRFLOW_VERSION = "2.10.5"  # the Airflow whose behaviour rtstream mirrors (docs/AIRFLOW.md)


def days_ago(n: int, hour: int = 0, minute: int = 0, second: int = 0, microsecond: int = 0) -> datetime:
    today = datetime.now(UTC).replace(hour=hour, minute=minute, second=second, microsecond=microsecond)
    return today - timedelta(days=n)


def _aware(*args: Any, **kwargs: Any) -> datetime:
    kwargs.setdefault("tzinfo", UTC)
    return datetime(*args, **kwargs)


timezone = SimpleNamespace(utc=UTC, datetime=_aware, utcnow=lambda: datetime.now(UTC),
                           make_aware=lambda v, tz=None: v if v.tzinfo else v.replace(tzinfo=tz or UTC))

NAMES: dict[str, Any] = {
    "DAG": DAG, "dag": dag, "task": task, "task_group": task_group, "TaskGroup": TaskGroup, "Label": Label,
    "BaseOperator": BaseOperator, "chain": chain, "cross_downstream": cross_downstream, "XComArg": XComArg,
    "PythonOperator": PythonOperator, "BranchPythonOperator": BranchPythonOperator,
    "ShortCircuitOperator": ShortCircuitOperator, "BaseBranchOperator": BaseBranchOperator,
    "BranchMixIn": BranchMixIn, "SkipMixin": SkipMixin, "EmptyOperator": EmptyOperator,
    "DummyOperator": DummyOperator, "BashOperator": BashOperator, "Variable": Variable, "Param": Param,
    "get_current_context": get_current_context, "days_ago": days_ago, "timezone": timezone,
    "TriggerRule": states.TriggerRule, "State": states.State, "TaskInstanceState": states.TaskInstanceState,
    **TRIGGER_OPERATORS, **EXTERNAL_SENSORS, **WATCHERS,
    "DagRunState": states.DagRunState, "Context": dict, "asset": asset, "setup": setup, "teardown": teardown,
    **BRANCH_OPERATORS, **assets.NAMES,
    **SENSORS, "NEVER_EXPIRE": NEVER_EXPIRE, "SubDagOperator": SubDagOperator,
    "is_venv_installed": is_venv_installed, **VENV_OPERATORS,
    **{name: getattr(states, name) for name in ("AirflowException", "AirflowSkipException", "AirflowFailException",
                                                "AirflowTaskTimeout", "AirflowNotFoundException",
                                                "AirflowSensorTimeout")},
}
BY_MODULE: dict[str, dict[str, Any]] = {
    "airflow": {"__version__": AIRFLOW_VERSION},
    "airflow.utils.timezone": vars(timezone),
    "airflow.example_dags.subdags.subdag": {"subdag": example_subdag},
}


def lookup(module: str, name: str) -> Any:
    """The object `from <module> import <name>` gives a DAG file."""
    if name in BY_MODULE.get(module, {}):
        return BY_MODULE[module][name]
    if name.startswith("__"):
        raise AttributeError(name)
    if name in NAMES:
        return NAMES[name]
    return unsupported(name, module)
