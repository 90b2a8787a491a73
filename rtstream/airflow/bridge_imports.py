"""How a DAG file's `import airflow...` resolves when the real Airflow is installed.

A DAG file gets its own `__import__` (set in the `__builtins__` of its module, so only its own import
statements, and those of modules beside it, go through it): every `airflow.*` module is an rtstream
stand-in module whose names are looked up in this order:
1. a name rtstream runs natively (rtstream.airflow.exports: DAG, @task, PythonOperator, BashOperator,
   BaseOperator, Variable ...): rtstream's own, the same as without Airflow installed;
2. else the real Airflow's object under that very module path: an operator class becomes an
   rtstream task that runs the real operator's `execute` (rtstream.airflow.bridge); anything else
   (hooks, `Connection`, helpers) is the real object;
3. else (a provider that is not installed) the placeholder that refuses the task at load with the pip
   command.
The real Airflow itself, and every package it imports, keeps importing the real `airflow`.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.abc
import importlib.machinery
import types
from pathlib import Path
from typing import Any

from rtstream.airflow import bridge, exports, operators
from rtstream.airflow.pip_advice import install_command

_stubs: dict[str, types.ModuleType] = {}
_resolved: dict[tuple[str, str], Any] = {}
_real_import = builtins.__import__


class _BridgeModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name != "__version__":
            raise AttributeError(name)
        value = resolve(self.__name__, name)
        setattr(self, name, value)  # one object per name, as a module attribute is
        return value


def resolve(module: str, name: str) -> Any:
    """What `from <module> import <name>` gives a DAG file when the real Airflow is installed."""
    key = (module, name)
    if key in _resolved:
        return _resolved[key]
    if name in exports.BY_MODULE.get(module, {}) or name in exports.NAMES:
        value = exports.lookup(module, name)
    else:
        value = _real_object(module, name)
    _resolved[key] = value
    return value


def _real_object(module: str, name: str) -> Any:
    try:
        real_module = importlib.import_module(module)
        value = getattr(real_module, name)
    except ImportError as exc:
        advice = install_command(module, extra_installed=True)
        why = (f"{name} (from {module}) cannot be imported from the installed Airflow "
               f"({type(exc).__name__}: {exc})" + (f"; {advice}" if advice else ""))
        return operators.unsupported(name, module, why)
    except AttributeError:
        return operators.unsupported(name, module, f"the installed Airflow has no {name} in {module}")
    if isinstance(value, types.ModuleType):
        # `from airflow.providers.http.operators import http`: the stand-in module, so that its names
        # resolve as above (the real module would hand the file real operators no DAG of rtstream's has)
        return _stub(f"{module}.{name}")
    if isinstance(value, type) and bridge.is_real_operator(value):
        return bridge.bridged(value)
    return value


def _stub(fullname: str) -> types.ModuleType:
    module = _stubs.get(fullname)
    if module is None:
        module = _stubs[fullname] = _BridgeModule(fullname)
        module.__path__ = []  # type: ignore[attr-defined]  # a package: any submodule imports
        parent, _, child = fullname.rpartition(".")
        if parent:
            setattr(_stub(parent), child, module)
    return module


def _import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
    if level == 0 and (name == "airflow" or name.startswith("airflow.")):
        leaf = _stub(name)
        return leaf if fromlist else _stub("airflow")
    return _real_import(name, globals, locals, fromlist, level)


def dag_file_builtins() -> dict[str, Any]:
    """The `__builtins__` of a DAG file's module: Python's, with the importing above."""
    return {**vars(builtins), "__import__": _import}


class _BesideLoader(importlib.machinery.SourceFileLoader):
    """A module beside the DAG files (a helper it imports) resolves `airflow` as the DAG file does."""

    def exec_module(self, module: types.ModuleType) -> None:
        module.__dict__["__builtins__"] = dag_file_builtins()
        super().exec_module(module)


class BesideFinder(importlib.abc.MetaPathFinder):
    """Finds the modules under the DAG folders and loads them with `_BesideLoader`."""

    def __init__(self, roots: list[Path]):
        self.roots = [r.resolve() for r in roots]

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname == "airflow" or fullname.startswith("airflow."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            return None  # not ours: the usual finders decide
        origin = Path(spec.origin).resolve()
        if not any(origin.is_relative_to(r) for r in self.roots):
            return None
        spec.loader = _BesideLoader(fullname, spec.origin)
        return spec
