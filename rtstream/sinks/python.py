"""`type = "python"`: a function of yours receives each window's rows (a DAG's store_data).

Like python stages it may take nothing, the window or the list of records, and be plain (run in a
thread) or async. It must be idempotent per window: a replayed window calls it again. If it raises,
the write is retried like any sink's (rtstream cannot tell a bad row from a down destination). A
function that finds rows it can never store, and stores the others, raises
`rtstream.model.errors.RowsRejected(name, [(rows, reason), ...])`: those rows go to the dead letters
with the reason, and nothing is retried.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from pydantic import Field

from rtstream.airflow.callables import call_style, load_callable
from rtstream.model.errors import user_code_failure
from rtstream.model.registry import register
from rtstream.model.window import Window
from rtstream.sinks.base import Sink, SinkConfig


class PythonSinkConfig(SinkConfig):
    call: Any = Field(description="\"module:function\" given each window and its rows")


@register("sink", "python")
class PythonSink(Sink):
    Config = PythonSinkConfig

    async def start(self) -> None:
        self.fn = load_callable(self.config.call, self.context.extra.get("search_dirs"))
        self.style = call_style(self.fn)

    def _args(self, window: Window, rows: list[dict[str, Any]]) -> tuple[Any, ...]:
        window = Window(window.start_ms, window.end_ms, rows, window.key, window.input_count)
        return {"none": (), "window": (window,), "records": (rows,)}[self.style]  # type: ignore[return-value]

    async def write_windows(self, items: list[tuple[Window, list[dict[str, Any]]]]) -> tuple[int, BaseException | None]:
        """Several windows in order, a plain function's calls in one hand-off to a thread, stopping at
        the first that raises: how many were written, and what that one raised (rtstream.runtime.flush_group)."""
        calls = [self._args(window, rows) for window, rows in items]
        if inspect.iscoroutinefunction(self.fn):
            for i, (window, rows) in enumerate(items):
                try:
                    await self.write(window, rows)
                except Exception as exc:  # noqa: BLE001 - the flusher's policy takes it from here
                    return i, exc
            return len(items), None

        def run() -> tuple[int, BaseException | None]:
            for i, args in enumerate(calls):
                try:
                    self.fn(*args)
                except BaseException as exc:  # noqa: BLE001 - sys.exit() in user code is a failed write
                    failure = user_code_failure(exc)
                    if failure is not exc:
                        failure.__cause__ = exc
                    return i, failure
            return len(calls), None

        return await asyncio.to_thread(run)

    async def write(self, window: Window, rows: list[dict[str, Any]]) -> None:
        args = self._args(window, rows)
        try:
            if inspect.iscoroutinefunction(self.fn):
                await self.fn(*args)
            else:
                await asyncio.to_thread(self.fn, *args)
        except BaseException as exc:  # noqa: BLE001 - sys.exit() in user code is a failed write, not the daemon's end
            raise user_code_failure(exc) from exc

    def describe(self) -> str:
        ref = self.config.call if isinstance(self.config.call, str) else getattr(self.config.call, "__qualname__", "?")
        return f"python: {ref}"
