"""What a loaded config is: the validated root, the flow, and each component's class and model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rtstream.config.flow import Flow
from rtstream.config.models import RootConfig
from rtstream.model.registry import Kind


@dataclass
class ComponentSettings:
    name: str
    kind: Kind
    cls: type
    config: BaseModel


@dataclass
class Settings:
    root: RootConfig
    flow: Flow
    components: dict[str, ComponentSettings]
    path: Path | None = None
    search_dirs: list[Path] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    # the DagBag the `dag` sinks were checked against (rtstream.config.dag_sinks), run by the daemon as is
    dag_bag: Any = None

    def of(self, names: list[str]) -> list[ComponentSettings]:
        return [self.components[n] for n in names]
