"""The sink contract: write one window's rows, all or nothing, idempotent per window and key."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from rtstream.model.asset_uri import check_asset_uri
from rtstream.model.policy import PolicyOverrides
from rtstream.model.positions import WindowCommit
from rtstream.model.registry import Component, ComponentConfig
from rtstream.model.window import Window
from rtstream.where import WhereFiltered, WhereText


class SinkConfig(ComponentConfig, PolicyOverrides):
    # Airflow's depends_on_past holds for every rtstream sink: windows are written to it strictly in
    # window order, and a window that fails blocks the later ones until it succeeds. The key is
    # accepted so imported configs read naturally; false cannot be honoured and is refused.
    depends_on_past: Literal[True] = Field(default=True, description="always true: windows are written in order, "
                                           "a failed one blocks the later ones")
    # only the output rows this expression holds for are sent here (rtstream.where.language); a window with
    # none is still a completed run of this sink, written with no rows
    where: WhereText = Field(default=None, description="only the rows this holds for are sent to this sink")
    # an Airflow asset this sink updates: each window it has written is an event of that asset, so the
    # daemon's DAGs scheduled on it run (rtstream.dags.pipeline_assets); the event is kept before the
    # window's source positions may be committed
    asset: str | None = Field(default=None, description="an asset URI: each written window is an event of it, "
                              "running the DAGs of [dags] scheduled on it")

    @field_validator("asset")
    @classmethod
    def _asset_uri(cls, value: str | None) -> str | None:
        return None if value is None else check_asset_uri(value)


class Sink(WhereFiltered, Component):
    """Base class. `write` returns only when the rows are durably delivered.

    A replayed window must leave the same result as writing it once: sinks upsert by
    (window_start, key) or replace the window's output whole.
    """

    Config: ClassVar[type[SinkConfig]]


    async def write(self, window: Window, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    @property
    def commits_source_offsets(self) -> bool:
        """True for a sink that commits the sources' offsets in its own transactions (Kafka
        exactly_once): the flusher then calls `write_committing` and nothing else commits."""
        return False

    async def write_committing(self, window: Window, rows: list[dict[str, Any]], commit: WindowCommit) -> None:
        """Write the rows and commit `commit` atomically; only for `commits_source_offsets` sinks."""
        raise NotImplementedError
