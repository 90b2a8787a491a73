"""One exception hierarchy, so callers can catch what they mean."""

from __future__ import annotations


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


class SinkError(ComponentError):
    pass


class StageError(ComponentError):
    pass


class StateDirError(RtstreamError):
    """state_dir cannot be written (full, read-only): the daemon stops rather than run on uncommitted."""


class DecodeError(RtstreamError):
    """A record could not be decoded or has no usable time; it goes to dead letters."""


class RowsRejected(SinkError):
    """The receiver refused some rows for good (an HTTP 4xx): they go to dead letters, not to retry."""

    def __init__(self, component: str, rejected: list[tuple[list[dict], str]]):  # type: ignore[type-arg]
        self.rejected = rejected
        super().__init__(component, f"{sum(len(r) for r, _ in rejected)} rows rejected: {rejected[0][1]}")
