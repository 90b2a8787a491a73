"""A task's Python callable by reference (`module:function`), with rtstream's stand-in airflow modules when the real Airflow is missing."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def load_callable(ref: Any, search_dirs: list[Path] | None = None) -> Callable[..., Any]:
    """`"package.module:function"` (or a callable, from the Python API) -> the function."""
    if callable(ref):
        return ref  # type: ignore[no-any-return]
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise ValueError(f"call must look like 'package.module:function' (got {ref!r})")
    module_name, _, attr = ref.partition(":")
    for d in search_dirs or []:
        if str(d) not in sys.path:
            sys.path.insert(0, str(d))
    # What a module prints at import goes to stderr: stdout carries `rtstream test`'s rows and JSON.
    try:
        with contextlib.redirect_stdout(sys.stderr):
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("airflow"):
            raise ValueError(f"cannot import module {module_name!r}: {exc}") from None
        from rtstream.airflow import stand_in as airflow_shim  # a DAG file imported for its functions

        airflow_shim.install()
        try:
            with contextlib.redirect_stdout(sys.stderr):
                module = importlib.import_module(module_name)
        except BaseException as exc2:  # noqa: BLE001 - any import failure (sys.exit() too) is a config error
            raise ValueError(f"cannot import module {module_name!r}: {_import_failure(exc2)}") from None
    except BaseException as exc:  # noqa: BLE001 - any import failure (sys.exit() too) is a config error
        raise ValueError(f"cannot import module {module_name!r}: {_import_failure(exc)}") from None
    fn = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)  # type: ignore[assignment]
        if fn is None:
            raise ValueError(f"module {module_name!r} has no {attr!r}")
    if not callable(fn):
        raise ValueError(f"{ref!r} is not callable")
    return fn  # type: ignore[return-value]


def _import_failure(exc: BaseException) -> str:
    if isinstance(exc, Exception):
        return str(exc)
    args = ", ".join(repr(a) for a in exc.args)[:200]
    return f"its top level raised {type(exc).__name__}({args})"


def returned_shape(value: Any) -> str:
    """What a user function returned, for an error that says so: `list of int`, `list of dict and str`.

    >>> returned_shape([1, 2]), returned_shape([{}, "a"]), returned_shape(3)
    ('a list of int', 'a list of dict and str', 'int')
    """
    if isinstance(value, (list, tuple)):
        kinds = list(dict.fromkeys(type(v).__name__ for v in value[:100]))
        return f"a {type(value).__name__} of {' and '.join(kinds[:4])}" if kinds else f"an empty {type(value).__name__}"
    return type(value).__name__


def call_style(fn: Callable[..., Any]) -> str:
    """How to call a window function: with nothing, the window, or the list of records."""
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    except (TypeError, ValueError):
        return "window"
    if not params:
        return "none"
    if params[0].name in ("records", "rows", "items", "data"):
        return "records"
    return "window"
