"""The optional packages a config needs, checked when it is loaded, so `validate` refuses what `run`
would fail on at start-up: a postgres sink without asyncpg, a Parquet S3 sink without pyarrow.

One table here rather than a hook per component: the extras are pyproject.toml's, and this is the one
place that maps a component's settings to them. A package counts as installed when it imports (a
broken install is as missing as an absent one); the answer is kept for the process.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rtstream.config.models import RootConfig
    from rtstream.config.settings import ComponentSettings

# extra -> the modules it brings, as pyproject.toml's [project.optional-dependencies] installs them
EXTRAS: dict[str, tuple[str, ...]] = {
    "postgres": ("asyncpg",),
    "parquet": ("pyarrow", "pyarrow.parquet"),
    "s3": ("aiobotocore", "botocore"),
    "yaml": ("yaml",),
    "fast": ("uvloop",),
}
PACKAGE = {"postgres": "asyncpg", "parquet": "pyarrow", "s3": "aiobotocore", "yaml": "PyYAML", "fast": "uvloop"}


def install_hint(extra: str) -> str:
    """How to install an extra, from PyPI and from a clone of the repository."""
    return f"pip install 'rtstream[{extra}]' (from a clone: pip install -e '.[{extra}]')"


def missing_reason(what: str, extra: str) -> str:
    return f"{what} needs {PACKAGE[extra]}, which is not installed: {install_hint(extra)}"


@functools.cache
def installed(extra: str) -> bool:
    for module in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - ImportError, or a package that breaks on import: unusable either way
            return False
    return True


def _needs(comp: ComponentSettings) -> Iterator[tuple[str, str, str]]:
    """(dotted key below the component, what needs it, extra) for each extra this component needs."""
    type_name = getattr(comp.cls, "type_name", "")
    cfg: Any = comp.config
    if comp.kind == "sink" and type_name == "postgres":
        yield "type", "the postgres sink", "postgres"
    elif comp.kind == "sink" and type_name == "s3":
        yield "type", "the s3 sink", "s3"
        if cfg.format == "parquet":
            yield "format", 'format = "parquet" (the default)', "parquet"
    elif comp.kind == "source" and type_name == "sql" and _is_postgres(cfg.dsn):
        yield "dsn", "a PostgreSQL dsn", "postgres"
    elif comp.kind == "stage" and type_name == "lookup" and cfg.source == "postgres":
        yield "from", 'from = "postgres"', "postgres"


def _is_postgres(dsn: Any) -> bool:
    text = dsn.get_secret_value() if hasattr(dsn, "get_secret_value") else str(dsn or "")
    return text.startswith(("postgresql://", "postgres://"))


def extras_problems(root: RootConfig | None, components: dict[str, ComponentSettings]) -> list[tuple[str, str]]:
    """`dotted.key: reason` for every optional package the config needs and this Python lacks."""
    problems: list[tuple[str, str]] = []
    for name, comp in components.items():
        for key, what, extra in _needs(comp):
            if not installed(extra):
                problems.append((f"{comp.kind}s.{name}.{key}", missing_reason(what, extra)))
    if root is not None and root.daemon.event_loop == "uvloop" and not installed("fast"):
        problems.append(("daemon.event_loop", missing_reason('event_loop = "uvloop"', "fast")))
    return problems
