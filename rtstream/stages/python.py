"""`type = "python"`: a function of yours gets each closed window and returns its rows.

It may take no argument, the window (`window.start`, `window.end`, `window.records`) or the list of
records; it may be async or plain (plain ones run in a thread so they cannot stall the daemon).
Return a list of rows (or one row) to replace the rows, or None to pass them on unchanged.
A function of an Airflow DAG that takes the task context is called through an AirflowTask
(rtstream.airflow.task_context): anything else it returns is its XCom, and the rows pass on unchanged.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from pydantic import Field, field_validator

from rtstream.airflow.callables import call_style, load_callable, returned_shape
from rtstream.airflow.task_context import AirflowTask
from rtstream.model.errors import StageError, user_code_failure
from rtstream.model.registry import register
from rtstream.model.window import Window
from rtstream.stages.base import Stage, StageConfig


class PythonConfig(StageConfig):
    call: Any = Field(description="\"module:function\" given each window's rows, returning rows")

    @field_validator("call")
    @classmethod
    def _ref(cls, value: Any) -> Any:
        if not callable(value) and not (isinstance(value, str) and value.count(":") == 1):
            raise ValueError(f"call must look like 'package.module:function' (got {value!r})")
        return value


@register("stage", "python")
class PythonStage(Stage):
    Config = PythonConfig

    def __init__(self, name: str, config: Any, context: Any):
        super().__init__(name, config, context)
        self.fn = load_callable(config.call, context.extra.get("search_dirs"))
        self.style = call_style(self.fn)
        self.is_async = inspect.iscoroutinefunction(self.fn)

    async def run(self, window: Window, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        window.records = rows
        args: tuple[Any, ...] = {"none": (), "window": (window,), "records": (rows,)}[self.style]
        try:
            if self.is_async:
                result = await self.fn(*args)
            else:
                result = await asyncio.to_thread(self.fn, *args)
            if inspect.isawaitable(result):
                result = await result
        except BaseException as exc:  # noqa: BLE001 - sys.exit() in user code fails this window, not the daemon
            raise user_code_failure(exc) from exc
        if result is None:
            return rows
        if isinstance(result, dict):
            return [result]
        if isinstance(result, (list, tuple)) and all(isinstance(r, dict) for r in result):
            return list(result)
        raise StageError(self.name, f"returned {returned_shape(result)}; expected a list of objects (dicts), "
                                    "one object (dict) or None")

    def describe(self) -> str:
        ref = self.config.call if isinstance(self.config.call, str) else getattr(self.fn, "__qualname__", "?")
        if isinstance(self.fn, AirflowTask):
            return f"python: {ref}(**context), its return value the XCom of {self.fn.task_id!r}"
        return f"python: {ref}({ {'none': '', 'window': 'window', 'records': 'records'}[self.style] })"
