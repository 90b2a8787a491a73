"""One worker process of a `workers = N` supervisor, as the supervisor and its status view see it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


@dataclass
class Worker:
    index: int
    admin_port: int | None
    proc: asyncio.subprocess.Process | None = None
    started: float = 0.0
    restarts: int = 0
    exit_code: int | None = None
    done: bool = False  # exited 0 on its own (a finite run that reached its end): not restarted
    crashes: list[float] = field(default_factory=list)
