"""`type = "table_join"`: a stream enriched with a table kept from a changelog (Flink's temporal join).

`table` is a source carrying the changelog (a compacted Kafka topic, or the `sql` source): its rows
set the value per key `table_on`; a null value (a Kafka tombstone, or JSON `null`) deletes the
record key's entry; `ttl` forgets an entry that long (event time) after its last change. Each row of
`stream` gets the value of its key (`stream_on`), fields merged as a `join`'s; `how = "inner"`
drops a row whose key the table lacks, `how = "left"` passes it on with the table's fields null (keys
and row shape: rtstream.engine.join_keys, rtstream.engine.join_rows). `time = "event"` (the default,
rtstream.engine.temporal_state): the value as of the row's time, once the table's watermark has
passed it, so a replay gives the same rows; `time = "processing"` (rtstream.engine.table_state): the
table as it is when the row is folded. The table is in the checkpoints: a restart with one restores
it and reads on, without reading the changelog again.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from rtstream.engine.table_state import TableState
from rtstream.engine.temporal_state import TemporalTable
from rtstream.model.durations import Duration
from rtstream.model.registry import register
from rtstream.stages.base import Stage, StageConfig
from rtstream.stages.join import StepStage


class TableJoinConfig(StageConfig):
    stream: str = Field(description="the source whose rows are enriched")
    table: str = Field(description="the source carrying the table's changelog")
    on: str | None = Field(default=None, description="the key field both share (or give stream_on and table_on)")
    stream_on: str | None = Field(default=None, description="the stream's key field, when the names differ")
    table_on: str | None = Field(default=None, description="the table's key field, when the names differ")
    how: Literal["inner", "left"] = Field(default="inner", description="inner: drop a row whose key the "
                                          "table lacks (or whose key is null); left: pass it on, the table's fields null")
    ttl: Duration | None = Field(default=None, gt=0, description="forget an entry this long (event time) after "
                                 "its last change")
    left_prefix: str = Field(default="left_", description="prefix of a stream field the table row also has")
    right_prefix: str = Field(default="right_", description="prefix of a table field the stream row also has")
    max_keys: int = Field(default=1_000_000, gt=0, description="keys the table may hold; beyond, a new key's "
                          "row is dead-lettered with the reason")
    time: Literal["event", "processing"] = Field(
        default="event", description="event: each stream row meets the table as of its own time, once the "
        "table's watermark has passed it (the same rows on a replay); processing: the table as it is when the "
        "row is folded")
    max_waiting: int = Field(default=1_000_000, gt=0, description="event time: stream rows that may wait for "
                             "the table's watermark; beyond, a row is dead-lettered with the reason")

    @model_validator(mode="after")
    def _keys(self) -> TableJoinConfig:
        if self.on is None and (self.stream_on is None or self.table_on is None):
            raise ValueError("give on (the key field both share), or stream_on and table_on")
        if self.stream == self.table:
            raise ValueError(f"stream and table name the same source {self.stream!r}")
        return self

    def flow_problems(self, name: str, sources: list[str], window_type: str) -> list[tuple[str, str]]:
        problems = [(f"stages.{name}.{side}", f"{getattr(self, side)!r} is not a source of the flow "
                     f"(the flow's sources: {', '.join(sources)})")
                    for side in ("stream", "table") if getattr(self, side) not in sources]
        if self.time == "event" and window_type == "count":
            problems.append((f"stages.{name}.time", "an event-time table_join hands rows on in time order, which "
                             "count windows do not follow; use time windows, or time = \"processing\""))
        return problems


@register("stage", "table_join")
class TableJoinStage(StepStage, Stage):  # type: ignore[misc]
    Config = TableJoinConfig

    def __init__(self, name: str, config: Any, context: Any):
        Stage.__init__(self, name, config, context)
        ttl = round(config.ttl * 1000) if config.ttl is not None else None
        args = (name, config.stream, config.table, config.stream_on or config.on, config.table_on or config.on,
                config.how, ttl, config.left_prefix, config.right_prefix, config.max_keys)
        step = TemporalTable(*args, config.max_waiting) if config.time == "event" else TableState(*args)
        StepStage.__init__(self, name, step)

    def state_figures(self) -> tuple[int, int, int] | None:
        return self.stateful_step.figures()

    def describe(self) -> str:
        c = self.config
        return f"table_join ({c.how}, {c.time} time): {c.stream} enriched with the table of {c.table}"
