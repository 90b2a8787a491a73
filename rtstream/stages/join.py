"""`type = "join"` and `type = "interval_join"`: rows of two sources matched by key.

A join names its sides by the node right before it in the flow: for `[orders, payments] >> match`,
`left = "orders"`, `right = "payments"`. Rows of any other source pass through unchanged.

- `join` (a window join, as Flink's): the rows of both sides that share a key and a window of the
  pipeline's `[window]`, paired when the window closes; `how = "left"` also emits each left row
  that found no partner. The rows wait in the pipeline's windows, so lateness, checkpoints and the
  commit rule are the windows' own.
- `interval_join` (Flink's interval join): a right row `b` matches a left row `a` of the same key when
  `a.ts + lower <= b.ts <= a.ts + upper`; each pair is emitted once, when its second row arrives, with
  the time field set to the later row's time, so it lands in that row's window. A row is kept until the
  watermark (which already allows for lateness) passes the last time a partner could have. With
  `how = "left"`, a left row that found no partner by then is emitted once, alone, in its own window
  (which waits `upper` longer to close: rtstream.engine.outer_rows); one that found one never is.

Keys match by one rule (rtstream.engine.join_keys: a null never matches, values only within their
kind; a missing key field or a list or object as key dead-letters the record), and every row of a
join has one shape (rtstream.engine.join_rows: clashing fields prefixed, the time field always, the
other side's fields null in an unmatched left row, `ts` the row's own time).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from rtstream.engine.join_rows import RowShape, pair_window
from rtstream.engine.join_sides import Sided, SideTagger
from rtstream.engine.join_state import IntervalState
from rtstream.engine.stateful import StatefulStep
from rtstream.model.durations import SignedDuration
from rtstream.model.registry import register
from rtstream.model.window import Window
from rtstream.stages.base import Stage, StageConfig
from rtstream.where import WhereText, compile_where


class SidesConfig(StageConfig):
    left: str = Field(description="the left side: the source right before this stage in the flow")
    right: str = Field(description="the right side: another source right before this stage")
    on: str | None = Field(default=None, description="the key field both sides share (or give left_on and right_on)")
    left_on: str | None = Field(default=None, description="the left side's key field, when the names differ")
    right_on: str | None = Field(default=None, description="the right side's key field, when the names differ")
    left_prefix: str = Field(default="left_", description="prefix of a left field the right row also has")
    right_prefix: str = Field(default="right_", description="prefix of a right field the left row also has")
    max_rows: int = Field(default=100_000, gt=0, description="rows one side may keep per window (join) or per "
                          "key (interval_join); beyond, a row is dead-lettered with the reason")

    @model_validator(mode="after")
    def _keys(self) -> SidesConfig:
        if self.on is None and (self.left_on is None or self.right_on is None):
            raise ValueError("give on (the key field both sides share), or left_on and right_on")
        if self.on is not None and (self.left_on is not None or self.right_on is not None):
            raise ValueError("give either on, or left_on and right_on, not both")
        if self.left == self.right and not self.splits_one_input():
            raise ValueError(f"left and right name the same source {self.left!r}" + (
                "; a window join of two kinds of one input's rows tells them apart with left_where and right_where"
                if self.type == "join" else ""))
        return self

    def splits_one_input(self) -> bool:
        return False

    def key_fields(self) -> tuple[str, str]:
        return (self.left_on or self.on or "", self.right_on or self.on or "")

    def flow_problems(self, name: str, sources: list[str], window_type: str) -> list[tuple[str, str]]:
        """A side must be a source right before the join in the flow."""
        out = [(f"stages.{name}.{side}", f"{getattr(self, side)!r} is not a source of the flow "
                f"(the flow's sources: {', '.join(sources)})")
               for side in ("left", "right") if getattr(self, side) not in sources]
        if window_type == "session" and self.type == "join":
            out.append((f"stages.{name}", "a window join needs tumbling or hopping windows, not sessions"))
        return out


class JoinConfig(SidesConfig):
    how: Literal["inner", "left"] = Field(default="inner", description="inner: matched pairs only; left: also "
                                          "each left row that found no right row in its window")
    window: Any = Field(default=None, description="not supported yet: a join uses the pipeline's [window]")
    left_fields: list[str] | None = Field(default=None, description="only these fields of a left row go into "
                                          "the join's rows, in this order (its time field always comes too), "
                                          "like a SQL select's columns; a row without one has it null. "
                                          "Default: every field")
    right_fields: list[str] | None = Field(default=None, description="the same for a right row")
    left_where: WhereText = Field(default=None, description="with right_where, when left and right name one "
                                  "input: its rows this holds for are the left side (a topic of several kinds)")
    right_where: WhereText = Field(default=None, description="its rows this holds for are the right side; a row "
                                   "both hold for is on both, one neither holds for passes through")

    def splits_one_input(self) -> bool:
        return self.left_where is not None and self.right_where is not None

    @model_validator(mode="after")
    def _split(self) -> JoinConfig:
        if (self.left_where is None) != (self.right_where is None):
            raise ValueError("give left_where and right_where together: they tell one input's two sides apart")
        if self.left_where is not None and self.left != self.right:
            raise ValueError("left_where and right_where split one input: left and right must name the same "
                             "source (filter a source of its own with its `where`)")
        return self

    @field_validator("left_fields", "right_fields")
    @classmethod
    def _fields(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("name at least one field (or leave it out for every field)")
        if blank := [name for name in value if not name.strip()]:
            raise ValueError(f"a field name must not be blank, got {blank[0]!r}")
        if twice := sorted({name for name in value if value.count(name) > 1}):
            raise ValueError(f"{', '.join(map(repr, twice))} named more than once")
        return value

    def side_fields(self) -> dict[str, list[str]]:
        """Side -> the only fields its rows keep, for the sides that name them."""
        return {side: only for side, only in (("left", self.left_fields), ("right", self.right_fields))
                if only is not None}

    @field_validator("window")
    @classmethod
    def _own_window(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError("a join's own window is not supported yet; it joins in the pipeline's [window]")
        return value


class StepStage:
    """The per-record part of a stage whose state lives in the engine (rtstream.engine.stateful)."""

    per_record = True
    awaits_per_batch = False
    stateful = True  # refused beside a stage that awaits per batch (rtstream.config.load)

    def __init__(self, name: str, step: StatefulStep):
        self.name = name
        self.stateful_step = step

    def apply(self, value: dict[str, Any]) -> list[dict[str, Any]]:
        raise TypeError(f"stage {self.name!r} keeps state and runs only in the fold (not beside an awaiting stage)")


@register("stage", "join")
class WindowJoinStage(Stage):
    """Pairs the rows of a closed window; its per-record part (`record_part`) marks each row's side."""

    Config = JoinConfig
    stateful = True

    def __init__(self, name: str, config: Any, context: Any):
        super().__init__(name, config, context)
        left_on, right_on = config.key_fields()
        self.shape = RowShape(left_on, right_on, config.left_prefix, config.right_prefix,
                              fields=(config.left_fields, config.right_fields))
        split = None
        if config.splits_one_input():
            split = (compile_where(config.left_where).matches, compile_where(config.right_where).matches)
        self.tagger = SideTagger(name, {config.left: "left", config.right: "right"}, config.max_rows,
                                 {"left": left_on, "right": right_on}, self.shape, config.side_fields(), split)
        self.record_part = StepStage(name, self.tagger)

    async def run(self, window: Window, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        left_on, right_on = self.config.key_fields()
        self.shape.set_time_field(self.tagger.time_field)
        return pair_window(rows, left_on, right_on, self.config.how, self.shape)  # rtstream.engine.join_rows

    def state_figures(self) -> tuple[int, int, int] | None:
        return self.tagger.figures()

    def describe(self) -> str:
        left_on, right_on = self.config.key_fields()
        kept = [f"{', '.join(only)} of {side}" for side, only in self.config.side_fields().items()]
        return (f"join ({self.config.how}): {self.config.left}.{left_on} = {self.config.right}.{right_on} "
                "in each window" + (f", keeping {' and '.join(kept)}" if kept else ""))


class IntervalJoinConfig(SidesConfig):
    lower: SignedDuration = Field(description="a right row's time may be this far after the left row's "
                                  "(negative: before), e.g. \"-5s\"")
    upper: SignedDuration = Field(description="...and at most this far after it, e.g. \"10m\"")
    how: Literal["inner", "left"] = Field(default="inner", description="inner: matched pairs only; left: also "
                                          "each left row that found no right row, once the watermark passes "
                                          "its time + upper (needs state.checkpoint_interval)")

    @model_validator(mode="after")
    def _bounds(self) -> IntervalJoinConfig:
        if self.lower > self.upper:
            raise ValueError(f"lower ({self.lower:g}s) must not be above upper ({self.upper:g}s)")
        return self


@register("stage", "interval_join")
class IntervalJoinStage(StepStage, Stage):  # type: ignore[misc]
    Config = IntervalJoinConfig

    def __init__(self, name: str, config: Any, context: Any):
        Stage.__init__(self, name, config, context)
        left_on, right_on = config.key_fields()
        state = IntervalState(name, config.left, config.right, left_on, right_on, round(config.lower * 1000),
                              round(config.upper * 1000), config.left_prefix, config.right_prefix, config.max_rows)
        if config.how == "left":  # rtstream.engine.outer_rows
            state.matched = set()
        StepStage.__init__(self, name, state)

    def state_figures(self) -> tuple[int, int, int] | None:
        return self.stateful_step.figures()

    def describe(self) -> str:
        left_on, right_on = self.config.key_fields()
        return (f"interval_join ({self.config.how}): {self.config.left}.{left_on} = {self.config.right}.{right_on}, "
                f"{self.config.right}'s time in [{self.config.lower:g}s, {self.config.upper:g}s] of the left's")


__all__ = ["Sided", "WindowJoinStage", "IntervalJoinStage", "StepStage"]
