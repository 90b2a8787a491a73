"""Stand-ins for `airflow` so a DAG file can be imported for its functions without Airflow installed.

`rtstream import-dag` points python components at the DAG file's own functions; the file's
module-level `DAG(...)`, operators and `>>` chains then run against these do-nothing stubs.
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


class Stub:
    """Accepts any construction, context use, attribute and dependency arrow, and does nothing."""

    def __init__(self, *args: Any, **kwargs: Any):
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return Stub()

    def __enter__(self) -> Stub:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __rshift__(self, other: Any) -> Any:
        return other

    def __lshift__(self, other: Any) -> Any:
        return other

    def __rrshift__(self, other: Any) -> Any:
        return self

    def __rlshift__(self, other: Any) -> Any:
        return self

    def __getattr__(self, name: str) -> Any:
        return Stub()


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return Stub


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


def install() -> None:
    """Make `import airflow...` succeed with stubs, when the real Airflow is not installed."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
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
