"""The one registry of component types that the config loader reads.

A component module registers its class under its `type` name; the class carries its config model
as `Config`. Adding a built-in is then one new file plus its line in `_BUILTINS`, which names the
module of each type so that a config imports only what it uses (the HTTP stack, database drivers
and cloud clients stay unloaded for a Kafka-to-Kafka pipeline; start-up is that much shorter).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field

from rtstream.model.strict import Strict

Kind = Literal["source", "stage", "sink"]
_REGISTRY: dict[Kind, dict[str, type]] = {"source": {}, "stage": {}, "sink": {}}
_BUILTINS: dict[Kind, dict[str, str]] = {
    "source": {"file": "rtstream.sources.file", "generator": "rtstream.sources.generator",
               "http_ingest": "rtstream.sources.http_ingest", "http_poll": "rtstream.sources.http_poll",
               "kafka": "rtstream.sources.kafka.source", "nexmark": "rtstream.sources.nexmark",
               "python": "rtstream.sources.python",
               "sql": "rtstream.sources.sql"},
    "stage": {"aggregate": "rtstream.stages.aggregate", "lookup": "rtstream.stages.lookup",
              "map": "rtstream.stages.map", "python": "rtstream.stages.python",
              "join": "rtstream.stages.join", "interval_join": "rtstream.stages.join",
              "table_join": "rtstream.stages.table_join", "keyed": "rtstream.stages.keyed"},
    "sink": {"asset_watcher": "rtstream.sinks.asset_watcher", "dag": "rtstream.sinks.dag", "file": "rtstream.sinks.file",
             "http": "rtstream.sinks.http", "kafka": "rtstream.sinks.kafka.sink",
             "postgres": "rtstream.sinks.postgres", "python": "rtstream.sinks.python", "s3": "rtstream.sinks.s3",
             "sqlite": "rtstream.sinks.sqlite", "stdout": "rtstream.sinks.stdout"},
}

T = TypeVar("T", bound=type)


class ComponentConfig(Strict):
    type: str = Field(description="the component's type: one of the sections of this reference")


class Component:
    """What every source, stage and sink has: a name, its validated config, the shared context,
    and a lifecycle (start before use, close after, in reverse order)."""

    type_name: ClassVar[str]

    def __init__(self, name: str, config: Any, context: Any):
        self.name = name
        self.config = config
        self.context = context

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def describe(self) -> str:
        return self.type_name


def register(kind: Kind, type_name: str) -> Callable[[T], T]:
    def deco(cls: T) -> T:
        if not hasattr(cls, "Config"):
            raise TypeError(f"{cls.__name__} has no Config model")
        _REGISTRY[kind][type_name] = cls
        cls.type_name = type_name  # type: ignore[attr-defined]
        return cls

    return deco


def lookup(kind: Kind, type_name: str) -> type[Any] | None:
    if type_name not in _REGISTRY[kind] and type_name in _BUILTINS[kind]:
        importlib.import_module(_BUILTINS[kind][type_name])  # its register() decorator runs
    return _REGISTRY[kind].get(type_name)


def known(kind: Kind) -> list[str]:
    return sorted(_BUILTINS[kind].keys() | _REGISTRY[kind].keys())
