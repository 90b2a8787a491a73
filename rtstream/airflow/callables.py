"""A task's Python callable by reference (`module:function`), with rtstream's stand-in airflow modules when the real Airflow is missing."""

from __future__ import annotations

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
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("airflow"):
            raise ValueError(f"cannot import module {module_name!r}: {exc}") from None
        from rtstream.airflow import stand_in as airflow_shim

        airflow_shim.install()
        try:
            module = importlib.import_module(module_name)
        except Exception as exc2:  # noqa: BLE001 - any import failure is a config error
            raise ValueError(f"cannot import module {module_name!r}: {exc2}") from None
    except Exception as exc:  # noqa: BLE001 - any import failure is a config error
        raise ValueError(f"cannot import module {module_name!r}: {exc}") from None
    fn = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)  # type: ignore[assignment]
        if fn is None:
            raise ValueError(f"module {module_name!r} has no {attr!r}")
    if not callable(fn):
        raise ValueError(f"{ref!r} is not callable")
    return fn  # type: ignore[return-value]


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
