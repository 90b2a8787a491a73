"""The DAG runner's unit tests import DAG files through rtstream's stand-in `airflow` modules: each test
gets them installed and leaves sys.meta_path and sys.modules as it found them."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture
def stand_in() -> Iterator[None]:
    from rtstream.airflow import stand_in as shim

    meta, modules = list(sys.meta_path), set(sys.modules)
    shim.install(first=True)
    try:
        yield
    finally:
        sys.meta_path[:] = meta
        for name in set(sys.modules) - modules:
            if name == "airflow" or name.startswith(("airflow.", "unusual_prefix_")):
                del sys.modules[name]
