"""One exception hierarchy, so callers can catch what they mean."""

from __future__ import annotations

from typing import Any

EXIT_CONFIG = 2  # the exit code of a refusal: a config, a flag or a file the user must fix
# a worker's start refused for a reason no restart of it fixes: its supervisor stops instead (and exits 1)
EXIT_START_REFUSED = 3


class RtstreamError(Exception):
    """Base of every error rtstream raises on purpose."""


class ConfigError(RtstreamError):
    """The configuration is refused; each problem names its dotted key."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{key}: {reason}" if key else reason for key, reason in problems))

    @classmethod
    def at(cls, key: str, reason: str) -> ConfigError:
        return cls([(key, reason)])


class ComponentError(RtstreamError):
    """A runtime failure inside a named component."""

    def __init__(self, component: str, message: str):
        self.component = component
        self.message = message
        super().__init__(f"{component}: {message}")


class SourceError(ComponentError):
    pass


class StartRefused(SourceError):
    """A source refuses to start and starting it again cannot help (topics a join reads co-partitioned
    have different partition counts): a `workers` supervisor stops rather than restart the worker."""


class SinkError(ComponentError):
    pass


class StageError(ComponentError):
    pass


class StateDirError(RtstreamError):
    """state_dir cannot be written (full, read-only): the daemon stops rather than run on uncommitted."""


class DecodeError(RtstreamError):
    """A record could not be decoded or has no usable time; it goes to dead letters."""


class SinkBackpressure(SinkError):
    """The destination asked to be called again later (an HTTP 429 or 503 with Retry-After).

    It counts as a failed attempt of the sink's policy, which waits `retry_after` seconds (capped by
    `max_retry_delay`) instead of its own backoff before the next one. Like Quix Streams'
    `SinkBackpressureError`.
    """

    def __init__(self, component: str, message: str, retry_after: float):
        self.retry_after = max(0.0, retry_after)
        super().__init__(component, message)


class RowsRejected(SinkError):
    """The destination refused some rows for good because of what they hold (an HTTP 4xx, a NUL in a
    PostgreSQL text value, a value the file sink cannot encode): only those go to dead letters, with
    the reason; raising it means every other row of the window was written.
    """

    def __init__(self, component: str, rejected: list[tuple[list[dict[str, Any]], str]]):
        self.rejected = rejected
        super().__init__(component, f"{sum(len(r) for r, _ in rejected)} rows rejected: {rejected[0][1]}")


class UserCodeExit(RtstreamError):
    """User code raised SystemExit, KeyboardInterrupt or another BaseException that is not an
    Exception: for the daemon that is the failure of the one record, window or call that ran it
    (dead-lettered, or under the component's policy), never a reason to end the process.
    """


def user_code_failure(exc: BaseException) -> Exception:
    """The Exception to report for what user code raised; asyncio's own cancellation is re-raised.

    >>> str(user_code_failure(SystemExit(0)))
    'raised SystemExit(0), which cannot end the daemon'
    """
    import asyncio

    if isinstance(exc, Exception):
        return exc
    if isinstance(exc, asyncio.CancelledError):
        raise exc
    args = ", ".join(repr(a) for a in exc.args)[:200]
    return UserCodeExit(f"raised {type(exc).__name__}({args}), which cannot end the daemon")
