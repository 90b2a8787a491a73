"""The stage contracts: per-record stages run on each record before windowing, window stages on
each closed window's rows."""

from __future__ import annotations

from typing import Any, ClassVar

from rtstream.model.policy import PolicyOverrides
from rtstream.model.registry import Component, ComponentConfig
from rtstream.model.window import Window


class StageConfig(ComponentConfig, PolicyOverrides):
    pass


class Stage(Component):
    Config: ClassVar[type[StageConfig]]
    per_record: ClassVar[bool] = False
    awaits_per_batch: ClassVar[bool] = False  # a per-record stage that must await (see rtstream.runtime.awaiting_stages)

    async def run(self, window: Window, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def state_figures(self) -> tuple[int, int, int] | None:
        """(rows, keys, bytes estimate) of the state a join or keyed stage keeps."""
        return None

    def lookup_figures(self) -> tuple[int, int, int, float] | None:
        """(cache hits, cache misses, lookups made, seconds spent) for a stage that looks values up."""
        return None


