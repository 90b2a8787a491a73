"""`type = "aggregate"`: group by a key field and compute named aggregates per window."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import Field, field_validator

from rtstream.airflow.callables import load_callable
from rtstream.model.registry import register
from rtstream.model.window import Window
from rtstream.stages.base import Stage, StageConfig
from rtstream.windows.aggregates import Aggregator, parse_aggregate, user_function


class AggregateConfig(StageConfig):
    key: str | None = Field(default=None,
        description="the field rows are grouped by in each window (none: one row a window)")
    aggregates: dict[str, str] = Field(
        description="output field -> function, e.g. { n = \"count()\", spent = \"sum(amount)\" }")
    window: dict[str, Any] | None = Field(default=None, description="this aggregate's own window, e.g. "
                                          "{ type = \"hopping\", size = \"10s\", hop = \"2s\" } (the keys "
                                          "of [window]; default: [window])")

    @field_validator("aggregates")
    @classmethod
    def _parse(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("at least one aggregate is needed, e.g. { events = \"count()\" }")
        for name, expr in value.items():
            parse_aggregate(name, expr)
        return value


def build_aggregator(config: AggregateConfig, search_dirs: Any) -> Aggregator:
    """The aggregator of a stage, with user-defined aggregators (module:Class()) loaded."""
    specs = []
    for name, expr in config.aggregates.items():
        spec = parse_aggregate(name, expr)
        if spec.is_custom:
            spec = replace(spec, custom=user_function(load_callable(spec.function, search_dirs)))
        specs.append(spec)
    return Aggregator(config.key, specs)


@register("stage", "aggregate")
class AggregateStage(Stage):
    """The first window stage folds records as they arrive; later ones fold the rows they get."""

    Config = AggregateConfig

    def __init__(self, name: str, config: Any, context: Any):
        super().__init__(name, config, context)
        self.aggregator = build_aggregator(config, context.extra.get("search_dirs"))

    async def run(self, window: Window, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        table = self.aggregator.new_table()
        update = self.aggregator.update
        for i, row in enumerate(rows):
            update(table, row, i)  # rows it cannot use are skipped: they were checked upstream or are not data
        return self.aggregator.rows(table, window.start_iso, window.end_iso)

    def describe(self) -> str:
        by = f" by {self.config.key}" if self.config.key else ""
        return f"aggregate{by}: " + ", ".join(f"{n} = {e}" for n, e in self.config.aggregates.items())
