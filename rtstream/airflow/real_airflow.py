"""The real apache-airflow (the `rtstream[airflow]` extra), when it is installed: found without importing
it, imported once with no metadata database, so that operators rtstream does not run natively run
through their own `execute` (rtstream.airflow.bridge).

No metadata database: Airflow's secrets backends are cut down to the environment's (and a custom
backend configured in `[secrets] backend`), so `BaseHook.get_connection` and `Variable.get` read
`AIRFLOW_CONN_*` / `AIRFLOW_VAR_*` and a missing one is Airflow's own "isn't defined" error, never a
query of a database that is not there. Airflow's logging set-up at import is undone: rtstream's
log handlers stay the root's.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import logging
import sys
from types import ModuleType
from typing import Any

_real: ModuleType | None = None
DISABLE_ENV = "RTSTREAM_AIRFLOW_BRIDGE"  # "0": never use the real Airflow (rtstream's stand-in only)


def installed() -> bool:
    """Is the real apache-airflow importable? Looks on sys.path only, past rtstream's stand-in finder."""
    import os

    if os.environ.get(DISABLE_ENV, "") == "0":
        return False
    if _real is not None:
        return True
    spec = importlib.machinery.PathFinder.find_spec("airflow")
    if spec is None or spec.origin is None or not spec.origin.endswith("__init__.py"):
        return False
    return supported(distribution_version())


def distribution_version() -> str | None:
    """The installed apache-airflow's version, read from its metadata without importing it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("apache-airflow")
    except PackageNotFoundError:
        return None


def supported(found: str | None) -> bool:
    """The bridge is built and tested against Airflow 2.10 (pyproject's `airflow` extra): Airflow 3 moved
    operators onto its task SDK, whose execution this bridge does not drive; rtstream's stand-in stays."""
    return found is not None and found.split(".")[:2] == ["2", "10"]


def _drop_stand_in() -> None:
    """rtstream's stand-in modules out of sys.modules and sys.meta_path, so `airflow` is the real one."""
    from rtstream.airflow import stand_in

    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, stand_in._Finder)]
    for name in [n for n in sys.modules if n == "airflow" or n.startswith("airflow.")]:
        if isinstance(sys.modules[name], stand_in._StubModule):
            del sys.modules[name]


def load() -> ModuleType:
    """The real `airflow` package, imported once and set up to need no metadata database."""
    global _real
    if _real is not None:
        return _real
    _drop_stand_in()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        real = importlib.import_module("airflow")
        import airflow.configuration as configuration
        import airflow.secrets as secrets
    finally:
        # Airflow's dictConfig at import replaces the root's handlers: rtstream's logging stays as it was
        root.handlers[:] = handlers
        root.setLevel(level)
    _warm_up()
    _share_secrets()
    metastore = "airflow.secrets.metastore.MetastoreBackend"
    if metastore in secrets.DEFAULT_SECRETS_SEARCH_PATH:
        secrets.DEFAULT_SECRETS_SEARCH_PATH.remove(metastore)  # the very list configuration.py reads
    configuration.secrets_backend_list[:] = configuration.initialize_secrets_backends()
    _real = real
    return real


def _warm_up() -> None:
    """Airflow's lazy first uses, done here on one thread: tasks run in threads, and two of them making
    Airflow's first `Connection` (SQLAlchemy configures every model's mapper under its lock, importing
    models lazily under the import lock) while another imports `airflow.decorators` (which each
    `execute` does) deadlocked."""
    import airflow.decorators.base  # noqa: F401  # ExecutorSafeguard imports it in every execute
    import airflow.models
    from sqlalchemy.orm import configure_mappers

    airflow.models.import_all_models()
    configure_mappers()


def _share_secrets() -> None:
    """What Airflow masks (a connection's password and sensitive extras, a sensitive variable's value) is
    masked by every rtstream surface too: rtstream's log handlers, not Airflow's, write the lines."""
    from airflow.utils.log.secrets_masker import _secrets_masker, should_hide_value_for_key

    from rtstream.support.secrets import KNOWN

    masker = _secrets_masker()
    airflow_add = masker.add_mask

    def add_mask(secret: Any, name: str | None = None) -> None:
        airflow_add(secret, name)  # a dict or list comes back here per item, by Airflow's own recursion
        if isinstance(secret, str) and (name is None or should_hide_value_for_key(name)):
            KNOWN.add([secret])

    masker.add_mask = add_mask  # type: ignore[method-assign]


def version() -> str:
    return str(getattr(load(), "__version__", "?"))


def real_base_operator() -> type:
    load()
    from airflow.models.baseoperator import BaseOperator

    return BaseOperator  # type: ignore[no-any-return]


def real_exceptions() -> ModuleType:
    load()
    return importlib.import_module("airflow.exceptions")


def execution_sentinel() -> object:
    """What Airflow's TaskInstance passes `execute` so that its ExecutorSafeguard lets the call through."""
    load()
    from airflow.models.base import _sentinel

    return _sentinel
