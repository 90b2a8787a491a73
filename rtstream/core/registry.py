"""The one registry of component types that the config loader reads.

A component module registers its class under its `type` name; the class carries its config model
as `Config`. Adding a sink is then one new file (plus one import line in its package).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypeVar

from rtstream.config.models import Strict

Kind = Literal["source", "stage", "sink"]
_REGISTRY: dict[Kind, dict[str, type]] = {"source": {}, "stage": {}, "sink": {}}

T = TypeVar("T", bound=type)


class ComponentConfig(Strict):
    type: str


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
    _load_builtins()
    return _REGISTRY[kind].get(type_name)


def known(kind: Kind) -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY[kind])


def _load_builtins() -> None:
    # Importing the packages runs their register() decorators.
    import rtstream.sinks  # noqa: F401
    import rtstream.sources  # noqa: F401
    import rtstream.stages  # noqa: F401
