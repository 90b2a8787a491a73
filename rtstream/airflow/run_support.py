"""What a running task reaches without arguments: its context (`get_current_context()`) and the run's loop.

Sync callables run in a thread pool; an async callable they return is run on the run's own event
loop (as a coroutine, not in a loop of its own) and the thread waits for it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable
from typing import Any

from rtstream.airflow.states import AirflowException

current_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("airflow_context")
run_loop: contextvars.ContextVar[asyncio.AbstractEventLoop] = contextvars.ContextVar("airflow_loop")


def get_current_context() -> dict[str, Any]:
    """`airflow.operators.python.get_current_context()`: the context of the task that is running."""
    try:
        return current_context.get()
    except LookupError:
        raise AirflowException("Current context was requested but no context was found! "
                               "Are you running within an airflow task?") from None


def run_on_loop(awaitable: Awaitable[Any]) -> Any:
    """Run a coroutine on the run's loop from a task's worker thread, and wait for its result."""
    loop = run_loop.get()
    return asyncio.run_coroutine_threadsafe(_wrap(awaitable), loop).result()


async def _wrap(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
