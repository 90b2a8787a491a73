"""Stages: one module per `type`, registered by name and imported only when a config names it.

A stage of your own subclasses `Stage` (and its config `StageConfig`): a window stage implements
`run(window, rows)`, a per-record one sets `per_record = True` and implements `apply(value)`; it
registers itself with `@register("stage", "my_type")`.
"""

from rtstream.model.errors import StageError
from rtstream.model.registry import register
from rtstream.model.window import Window
from rtstream.stages.base import Stage, StageConfig

__all__ = ["Stage", "StageConfig", "Window", "StageError", "register"]
