"""`PythonVirtualenvOperator`, `ExternalPythonOperator` (and `@task.virtualenv`, `@task.external_python`),
as Airflow 2.10 runs them (airflow/operators/python.py, utils/python_virtualenv.py): the callable's
source (its task decorator removed) is written to a script with its arguments pickled, run by another
interpreter in a subprocess, and its pickled result read back as the return value.

- PythonVirtualenvOperator needs the virtualenv package, as Airflow's does (refused at load without
  it): `python -m virtualenv DIR [--system-site-packages] --python=python[VERSION]`, then
  `DIR/bin/pip install [pip_install_options] -r requirements.txt` (the sorted requirements) with pip's
  own configuration and cache (`index_urls` write a pip.conf into the venv, as Airflow's). When pip
  cannot install them (offline here, say) the task fails with pip's own last lines and the requirements
  named. `venv_cache_path` keeps the venv in `venv-<hash>` as Airflow does.
- ExternalPythonOperator runs `python` (an absolute path to an existing file).
- The callable gets the context keys Airflow would serialise: the string keys always, the dates when
  the target has pendulum (`system_site_packages`, `pendulum`/`apache-airflow` in the requirements,
  `expect_pendulum`). Airflow also pickles its own objects (`dag`, `task`, `dag_run`, `macros`, `params`,
  `conf`) where Airflow is installed in the target; rtstream's objects are not Airflow's, so a callable
  that names one of them fails with that reason instead.
- Exit codes: `skip_on_exit_code` skips; any other non-zero exit fails with the callable's exception
  text (the script's termination log) when there is one.
"""

from __future__ import annotations

import ast
import inspect
import logging
import os
import pickle
import subprocess
import tempfile
import textwrap
import types
from collections.abc import Callable, Container, Iterable
from pathlib import Path
from typing import Any, ClassVar

from rtstream.airflow.operators import BranchMixIn, PythonOperator
from rtstream.airflow.states import AirflowException, AirflowSkipException

log = logging.getLogger("rtstream.airflow")
BASE_KEYS = {"ds", "ds_nodash", "expanded_ti_count", "inlets", "map_index_template", "next_ds", "next_ds_nodash",
             "outlets", "prev_ds", "prev_ds_nodash", "run_id", "task_instance_key_str", "test_mode", "tomorrow_ds",
             "tomorrow_ds_nodash", "ts", "ts_nodash", "ts_nodash_with_tz", "yesterday_ds", "yesterday_ds_nodash"}
PENDULUM_KEYS = {"data_interval_end", "data_interval_start", "execution_date", "logical_date",
                 "next_execution_date", "prev_data_interval_end_success", "prev_data_interval_start_success",
                 "prev_execution_date", "prev_execution_date_success", "prev_start_date_success",
                 "prev_end_date_success"}
AIRFLOW_KEYS = {"macros", "conf", "dag", "dag_run", "task", "params", "triggering_dataset_events"}
SCRIPT = '''from __future__ import annotations
import {lib}
import sys

{source}
{module_shim}
with open(sys.argv[1], "rb") as file:
    arg_dict = {lib}.load(file)
with open(sys.argv[3], "r") as file:
    virtualenv_string_args = list(map(lambda x: x.strip(), list(file)))
try:
    res = {name}(*arg_dict["args"], **arg_dict["kwargs"])
except Exception as e:
    with open(sys.argv[4], "w") as file:
        file.write(str(e))
    raise
with open(sys.argv[2], "wb") as file:
    if res is not None:
        {lib}.dump(res, file)
'''


def source_without_task_decorator(fn: Callable[..., Any]) -> str:
    """The function's source, dedented, without its `@task...` decorators (Airflow's remove_task_decorator)."""
    source = textwrap.dedent(inspect.getsource(fn))
    tree = ast.parse(source)
    node = next(n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    lines = source.splitlines(keepends=True)
    drop: set[int] = set()
    for dec in node.decorator_list:
        if ast.unparse(dec).startswith("task"):
            drop |= set(range(dec.lineno - 1, (dec.end_lineno or dec.lineno)))
    return "".join(line for i, line in enumerate(lines) if i not in drop)


class VirtualenvBase(PythonOperator):
    template_ext: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, python_callable: Callable[..., Any], serializer: str | None = None,
                 string_args: Iterable[str] | None = None, expect_airflow: bool = True,
                 skip_on_exit_code: int | Container[int] | None = None, env_vars: dict[str, str] | None = None,
                 inherit_env: bool = True, use_dill: bool = False, **kwargs: Any):
        if not isinstance(python_callable, types.FunctionType) or python_callable.__name__ == "<lambda>":
            raise ValueError(f"{type(self).__name__} only supports functions for python_callable arg")
        if inspect.isgeneratorfunction(python_callable):
            raise ValueError(f"{type(self).__name__} does not support using 'yield' in python_callable")
        super().__init__(python_callable=python_callable, **kwargs)
        if use_dill:
            if serializer:
                raise AirflowException("Both 'use_dill' and 'serializer' parameters are set. Please set only one of them")
            serializer = "dill"
        self.serializer = serializer or "pickle"
        if self.serializer not in ("pickle", "cloudpickle", "dill"):
            raise AirflowException(f"Unsupported serializer {self.serializer!r}. "
                                   "Expected one of 'pickle', 'cloudpickle', 'dill'")
        self.string_args, self.expect_airflow = list(string_args or []), expect_airflow
        self.skip_on_exit_code: Container[int] = (skip_on_exit_code if isinstance(skip_on_exit_code, Container)
                                                  else [] if skip_on_exit_code is None else [skip_on_exit_code])
        self.env_vars, self.inherit_env = env_vars, inherit_env

    def context_keys(self) -> set[str]:
        return set(BASE_KEYS)

    def execute(self, context: dict[str, Any]) -> Any:
        keys = self.context_keys()
        params = inspect.signature(self.python_callable).parameters
        named = {p for p in params if params[p].kind is not params[p].VAR_KEYWORD} & AIRFLOW_KEYS & keys
        if named - set(self.op_kwargs):
            raise AirflowException(
                f"{type(self).__name__} {self.task_id}: the callable asks for {', '.join(sorted(named))}: Airflow "
                "pickles its own objects into the other interpreter; rtstream's are not Airflow's and cannot be "
                "unpickled there (pass the values you need as op_kwargs)")
        # a **kwargs callable gets the serialisable keys but Airflow's objects: it sees no dag, task ... there
        return super().execute({k: v for k, v in context.items() if k in keys - AIRFLOW_KEYS})

    def airflow_in_target(self) -> bool:
        return False

    def python_path(self, tmp: Path) -> Path:
        raise NotImplementedError

    def execute_callable(self) -> Any:
        with tempfile.TemporaryDirectory(prefix="venv-call") as tmp:
            return self._run(self.python_path(Path(tmp)), Path(tmp))

    def _run(self, python: Path, tmp: Path) -> Any:
        lib: Any = pickle if self.serializer == "pickle" else __import__(self.serializer)
        op_kwargs = dict(self.op_kwargs)
        if self.templates_dict:
            op_kwargs["templates_dict"] = self.templates_dict
        (tmp / "script.in").write_bytes(lib.dumps({"args": list(self.op_args), "kwargs": op_kwargs}))
        (tmp / "string_args.txt").write_text("\n".join(map(str, self.string_args)))
        name = self.python_callable.__name__
        shim = ""
        module = getattr(self.python_callable, "__module__", "")
        if module.startswith("unusual_prefix_"):  # a function of the DAG file: pickles name that module
            shim = (f"import types\n_m = types.ModuleType({module!r})\n_m.{name} = {name}\n"
                    f"sys.modules[{module!r}] = _m\n")
        (tmp / "script.py").write_text(SCRIPT.format(lib=self.serializer, source=self.python_source(),
                                                     module_shim=shim, name=name))
        env = dict(os.environ) if self.inherit_env else {}
        env.update(self.env_vars or {})
        done = subprocess.run([str(python), str(tmp / "script.py"), str(tmp / "script.in"), str(tmp / "script.out"),
                               str(tmp / "string_args.txt"), str(tmp / "termination.log")],
                              env=env, capture_output=True, text=True, check=False)
        for line in (done.stdout + done.stderr).splitlines():
            log.info("%s: %s", self.task_id, line)
        if done.returncode != 0:
            if done.returncode in self.skip_on_exit_code:
                raise AirflowSkipException(f"Process exited with code {done.returncode}. Skipping.")
            term = tmp / "termination.log"
            if term.exists() and term.stat().st_size > 0:
                raise AirflowException(f"Process returned non-zero exit status {done.returncode}.\n{term.read_text()}")
            raise AirflowException(f"{python} exited with {done.returncode}: {done.stderr.strip()[-1000:]}")
        if 0 in self.skip_on_exit_code:
            raise AirflowSkipException("Process exited with code 0. Skipping.")
        out = tmp / "script.out"
        return lib.loads(out.read_bytes()) if out.exists() and out.stat().st_size else None

    def python_source(self) -> str:
        return textwrap.dedent(inspect.getsource(self.python_callable))


class ExternalPythonOperator(VirtualenvBase):
    template_fields: ClassVar[tuple[str, ...]] = ("python", *PythonOperator.template_fields)

    def __init__(self, *, python: str, python_callable: Callable[..., Any], expect_pendulum: bool = False,
                 **kwargs: Any):
        if not python:
            raise ValueError("Python Path must be defined in ExternalPythonOperator")
        super().__init__(python_callable=python_callable, **kwargs)
        self.python, self.expect_pendulum = python, expect_pendulum

    def _imports(self, module: str) -> bool:
        try:  # a missing interpreter is reported by python_path, as Airflow reports it
            return subprocess.run([self.python, "-c", f"import {module}"], capture_output=True,
                                  check=False).returncode == 0
        except OSError:
            return False

    def airflow_in_target(self) -> bool:
        return self.expect_airflow and self._imports("airflow")

    def context_keys(self) -> set[str]:
        if self.airflow_in_target():
            return BASE_KEYS | AIRFLOW_KEYS | PENDULUM_KEYS
        return BASE_KEYS | PENDULUM_KEYS if self.expect_pendulum else set(BASE_KEYS)

    def python_path(self, tmp: Path) -> Path:
        path = Path(self.python)
        if not path.exists():
            raise ValueError(f"Python Path '{path}' must exists")
        if not path.is_file():
            raise ValueError(f"Python Path '{path}' must be a file")
        if not path.is_absolute():
            raise ValueError(f"Python Path '{path}' must be an absolute path.")
        return path


class BranchExternalPythonOperator(ExternalPythonOperator, BranchMixIn):
    def execute(self, context: dict[str, Any]) -> Any:
        return self.do_branch(context, super().execute(context))
