"""Failure policy, like Airflow's default_args: retries, capped backoff, a timeout per attempt, and
what happens after the last retry. `[defaults]` sets it for all; any stage or sink may override it.
It is the only retry layer: a stage or sink never retries inside an attempt (rtstream.runtime.flush)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from rtstream.model.durations import Duration

OnFailure = Literal["dead_letter", "halt"]


class PolicyOverrides(BaseModel):
    """The keys a stage or sink section may set to override `[defaults]`."""

    retries: int | None = Field(default=None, ge=0, description="retries after the first attempt (Airflow's)")
    retry_delay: Duration | None = Field(default=None, description="the first backoff; doubled each retry")
    max_retry_delay: Duration | None = Field(default=None, description="cap of the backoff and of a Retry-After")
    timeout: Duration | None = Field(default=None, description="per attempt: one stage call or one sink write")
    on_failure: OnFailure | None = Field(default=None,
        description="after the last retry: \"halt\" (retry until it works) or \"dead_letter\" the window")


@dataclass
class Policy:
    retries: int
    retry_delay: float
    max_retry_delay: float
    timeout: float | None
    on_failure: OnFailure = Field(
        description="after the last retry: \"halt\" (retry until it works) or \"dead_letter\" the window")


def resolve(defaults: Any, config: Any, kind: str) -> Policy:
    """Defaults, then the component's own keys. After the last retry a stage dead-letters its window
    and a sink halts (keeps retrying, commits nothing past it): never skip data silently. `kind` is
    "stage", "sink", or "store" for a stage whose failure is its store's (a lookup): it halts too."""

    def pick(key: str, fallback: Any) -> Any:
        own = getattr(config, key, None)
        return own if own is not None else fallback

    return Policy(
        retries=pick("retries", defaults.retries),
        retry_delay=pick("retry_delay", defaults.retry_delay),
        max_retry_delay=pick("max_retry_delay", defaults.max_retry_delay),
        timeout=pick("timeout", defaults.timeout),
        on_failure=pick("on_failure", "dead_letter" if kind == "stage" else "halt"),
    )
