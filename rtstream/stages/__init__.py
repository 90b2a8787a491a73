"""Stages between sources and sinks; importing this package registers the built-in ones."""

from rtstream.stages import aggregate, lookup, map, python  # noqa: F401
