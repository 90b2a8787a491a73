"""What every component is given at construction: where to keep state, and whom to tell."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# (source, partitions, epoch, marks, resuming) -> positions to read from instead (restored checkpoints)
AssignCallback = Callable[..., Awaitable[dict[Hashable, int] | None]]
RevokeCallback = Callable[[str, list[Hashable]], Awaitable[None]]


async def _nothing(source: str, partitions: list[Hashable], epoch: int = 0, marks: Any = None,
                   resuming: Any = None) -> None:
    return None


async def _nothing_committed(window: Any) -> None:
    return None


@dataclass
class Context:
    pipeline: str
    state_dir: Path
    time_mode: str = "event"
    key_fields: list[str] = field(default_factory=list)  # the output key, for upserting sinks
    on_assign: AssignCallback = _nothing  # batches carry the epoch
    on_revoke: RevokeCallback = _nothing  # type: ignore[assignment]
    # window -> {consumer group: {partition: (offset, metadata)}} that writing it makes safe to commit,
    # for a sink that commits them itself (Kafka transactions)
    offsets_after: Callable[[Any], dict[str, dict[Any, tuple[int, str]]]] = lambda window: {}
    offsets_committed: Callable[[Any], Awaitable[None]] = _nothing_committed  # that sink's transaction went through
    extra: dict[str, Any] = field(default_factory=dict)
