"""An Emission: a closed window on its way to the sinks, with the holds its writing releases."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rtstream.model.positions import PartitionKey
from rtstream.model.window import Window


@dataclass(slots=True)
class Emission:
    """A closed window on its way to the stages and sinks, and the partitions it holds back."""

    id: int
    window: Window
    rows: list[dict[str, Any]]
    partitions: list[tuple[PartitionKey, int]]  # (partition, first offset in this window)
    marks: dict[PartitionKey, int] | None = None  # once written, these partitions are written up to here
    closed_at: float = field(default_factory=time.monotonic)  # when the watermark let it go
    tag_final: bool = False  # emit = "updates": every row says whether it is final
    branch: int = 0  # which branch's engine emitted it, in a flow of several (rtstream.engine.branches)
