"""`type = "map"`: a plain function applied to each record before windowing.

It returns the new record (a dict), a list of records, or None to drop the record. It runs inside
the batch loop, so it must be quick and must not block; a raise dead-letters that record only.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from rtstream.airflow.callables import load_callable, returned_shape
from rtstream.model.errors import user_code_failure
from rtstream.model.registry import register
from rtstream.stages.base import Stage
from rtstream.stages.python import PythonConfig


class MapConfig(PythonConfig):
    call: Any = Field(description="\"module:function\" given each record (a dict) before windowing, returning "
                      "a record, a list of records, or None to drop it")


@register("stage", "map")
class MapStage(Stage):
    Config = MapConfig
    per_record = True

    def __init__(self, name: str, config: Any, context: Any):
        super().__init__(name, config, context)
        self.fn = load_callable(config.call, context.extra.get("search_dirs"))

    def apply(self, value: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            out = self.fn(value)
        except Exception:
            raise
        except BaseException as exc:  # noqa: BLE001 - sys.exit() in user code dead-letters its record only
            raise user_code_failure(exc) from exc
        if out is None:
            return []
        if isinstance(out, dict):
            return [out]
        if isinstance(out, list) and all(isinstance(r, dict) for r in out):
            return out
        raise TypeError(f"returned {returned_shape(out)}; expected an object (dict), a list of objects (dicts) "
                        "or None")

    def describe(self) -> str:
        return f"map: {self.config.call if isinstance(self.config.call, str) else self.fn.__qualname__}"
