"""Sinks: one module per `type`, registered by name and imported only when a config names it.

A sink of your own subclasses `Sink` (and its config `SinkConfig`), writes a closed `Window`'s rows
all or nothing, raises `RowsRejected` for rows it can never write and `SinkBackpressure` to be called
later, and registers itself: `@register("sink", "my_type")`.
"""

from rtstream.model.errors import RowsRejected, SinkBackpressure, SinkError
from rtstream.model.registry import register
from rtstream.model.window import Window
from rtstream.sinks.base import Sink, SinkConfig

__all__ = ["Sink", "SinkConfig", "Window", "RowsRejected", "SinkBackpressure", "SinkError", "register"]
