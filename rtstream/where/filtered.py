"""The `where` of a source or a sink: its config's expression, compiled once."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from rtstream.where.language import Where, compile_where


class WhereFiltered:
    """Mixed into a component whose config has a `where` key (a source's or a sink's)."""

    config: Any

    @cached_property
    def where(self) -> Where | None:
        """The compiled `where` of this component, or None when it takes everything."""
        text = getattr(self.config, "where", None)
        return compile_where(text) if text is not None else None
