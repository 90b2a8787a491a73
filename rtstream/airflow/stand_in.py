"""Stand-ins for `airflow` so a DAG file can be imported without Airflow installed.

Every `airflow.*` module resolves; its names are rtstream's DAG model (rtstream.airflow.exports), so
`rtstream dags` runs the DAG and `rtstream import-dag`'s python components import the file's own
functions with its module-level `DAG(...)`, operators and `>>` chains built for real.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
import types
from pathlib import Path
from typing import Any

_IMPORTS_AIRFLOW = re.compile(rb"^[ \t]*(?:from|import)[ \t]+airflow\b", re.MULTILINE)


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        # rtstream's DAG model (rtstream.airflow.exports): the same object under every module path
        from rtstream.airflow.exports import lookup

        if name.startswith("__") and name != "__version__":
            raise AttributeError(name)
        return lookup(self.__name__, name)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname == "airflow" or fullname.startswith("airflow."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _StubModule(spec.name)
        module.__path__ = []  # a package, so any submodule imports
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def install(first: bool = False) -> None:
    """Make `import airflow...` resolve to rtstream's stand-in, when the real Airflow is not installed
    (or, with `first`, even when it is: `rtstream dags` runs rtstream's own DAG model)."""
    if first:
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _Finder)]
        sys.meta_path.insert(0, _Finder())
    elif not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())  # last: a real Airflow, where installed, is found first


def prepare_import(ref: object, search_dirs: list[Path] | None = None) -> None:
    """Before `module:function` is imported: if the module imports airflow and Airflow is not
    installed, install the stubs first, so the module's top level runs once.

    Without this, the first import ran the DAG file's top level up to `from airflow import DAG`,
    failed, and the retry with the stubs ran it again (`rtstream validate` ran it twice).
    """
    if not isinstance(ref, str) or ref.count(":") != 1 or any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    module_name = ref.partition(":")[0]
    if module_name in sys.modules:
        return
    for d in search_dirs or []:
        if str(d) not in sys.path:
            sys.path.insert(0, str(d))  # as rtstream.airflow.callables.load_callable does
    try:
        if importlib.util.find_spec("airflow") is not None:
            return  # the real Airflow
        spec = importlib.util.find_spec(module_name)  # a dotted name imports its parents, as the import would
        origin = spec.origin if spec is not None else None
        if origin is None or not origin.endswith(".py"):
            return
        source = Path(origin).read_bytes()
    except (ImportError, ValueError, OSError):
        return  # the import itself will say what is wrong
    if _IMPORTS_AIRFLOW.search(source):
        install()
