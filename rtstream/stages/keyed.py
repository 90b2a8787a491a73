"""`type = "keyed"`: per-key state outside windows, `function(state, record) -> (state, outputs)`.

The state of a key is None at first; returning None as the state forgets the key. `outputs` (a list
of rows, one row, or None) go on down the flow into the window as records would. A raise
dead-letters that record and leaves the state as it was. The state lives with the partition the key's
records come from, and is checkpointed and restored with it like its windows (`[state]
checkpoint_interval`); a record held only in the state holds the commit until a checkpoint covers it.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from rtstream.airflow.callables import load_callable
from rtstream.engine.keyed_state import KeyedState
from rtstream.model.durations import Duration
from rtstream.model.errors import user_code_failure
from rtstream.model.registry import register
from rtstream.stages.base import Stage, StageConfig
from rtstream.stages.join import StepStage


class KeyedConfig(StageConfig):
    key: str = Field(description="the field whose value names the state")
    function: Any = Field(description="\"module:function\" called as function(state, record) -> (state, outputs)")
    ttl: Duration | None = Field(default=None, gt=0, description="forget a key's state this long (event time) "
                                 "after its last record")
    max_keys: int = Field(default=1_000_000, gt=0, description="keys the stage may hold; beyond, a new key's "
                          "record is dead-lettered with the reason")

    @field_validator("function")
    @classmethod
    def _ref(cls, value: Any) -> Any:
        if not callable(value) and not (isinstance(value, str) and value.count(":") == 1):
            raise ValueError(f"function must look like 'package.module:function' (got {value!r})")
        return value


@register("stage", "keyed")
class KeyedStage(StepStage, Stage):  # type: ignore[misc]
    Config = KeyedConfig

    def __init__(self, name: str, config: Any, context: Any):
        Stage.__init__(self, name, config, context)
        fn = load_callable(config.function, context.extra.get("search_dirs"))

        def call(state: Any, value: dict[str, Any]) -> Any:
            try:
                return fn(state, value)
            except Exception:
                raise
            except BaseException as exc:  # noqa: BLE001 - sys.exit() in user code dead-letters its record only
                raise user_code_failure(exc) from exc

        ttl = round(config.ttl * 1000) if config.ttl is not None else None
        StepStage.__init__(self, name, KeyedState(name, config.key, call, ttl, config.max_keys))

    def state_figures(self) -> tuple[int, int, int] | None:
        return self.stateful_step.figures()

    def describe(self) -> str:
        f = self.config.function
        return f"keyed: {f if isinstance(f, str) else getattr(f, '__qualname__', '?')}(state, record) by {self.config.key}"
