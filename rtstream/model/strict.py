"""The base of every config model: unknown keys are refused."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Unknown keys are refused, so a typo never silently falls back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=False)
