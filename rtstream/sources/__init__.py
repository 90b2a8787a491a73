"""Sources: one module per `type`, registered by name and imported only when a config names it.

A source of your own subclasses `Source` (and its config `SourceConfig`), yields `Batch`es of
`Record`s and registers itself: `@register("source", "my_type")`. docs/ARCHITECTURE.md has the contract.
"""

from rtstream.model.batch import Batch
from rtstream.model.positions import Mark, SourceCommit
from rtstream.model.record import Record
from rtstream.model.registry import register
from rtstream.sources.base import Source, SourceConfig

__all__ = ["Source", "SourceConfig", "Batch", "Record", "Mark", "SourceCommit", "register"]
